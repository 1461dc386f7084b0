"""A real SLURM cluster on this machine for the tests: ``munged``, ``slurmctld`` and ``slurmd``.

Everything is private to one temporary folder: the MUNGE key and socket, ``slurm.conf``, the state,
spool and log folders and the PID files; nothing reads or writes ``/etc/slurm``, ``/etc/munge`` or a
system service. The controller and the node daemon listen on free ports of 127.0.0.1. The cluster has
one node (this machine, by its host name) with 2 CPUs and 8 GiB booked in a partition ``debug``;
the commands (``sbatch``, ``squeue``, ``scancel``) find it through ``SLURM_CONF``.

The daemons run as root (slurmd starts each job as the user who submitted it), from Debian's
``slurm-wlm`` and ``munge`` packages, which ``make test`` installs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..browser import free_port
from ..processes import stop_process

__all__ = ["Job", "Slurm", "slurm_cluster"]

CPUS = 2
MEMORY_MB = 8192  # booked, not checked against the machine (config_overrides): 2 jobs of 2 GiB fit
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0

_CONF = """\
ClusterName=workbench-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={controller_port}
SlurmdPort={node_port}
# bind 127.0.0.1 (what the addresses above name) rather than every interface
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={directory}/state
SlurmdSpoolDir={directory}/spool
SlurmctldPidFile={directory}/slurmctld.pid
SlurmdPidFile={directory}/slurmd.pid
SlurmctldLogFile={directory}/log/slurmctld.log
SlurmdLogFile={directory}/log/slurmd.log
PlugStackConfig={directory}/plugstack.conf
MailProg=/bin/true
# no cgroups: processes are tracked through their parents, tasks are not bound to CPUs
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
# cores and memory are what jobs book; the node's are taken from here, not measured
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
ReturnToService=2
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@dataclass(frozen=True)
class Job:
    """One job as ``squeue`` lists it."""

    id: str
    name: str
    state: str  # PENDING, RUNNING, COMPLETING, ...
    cpus: int
    memory: str  # the memory it booked, as SLURM writes it ("2G")


@dataclass(frozen=True)
class Slurm:
    """A running test cluster: its configuration file, node name and folder."""

    conf: Path
    node: str
    directory: Path

    @property
    def env(self) -> dict[str, str]:
        """The environment in which SLURM commands talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str) -> str:
        """Run a SLURM command against this cluster; its output."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def jobs(self) -> list[Job]:
        """The jobs in the queue (pending, running or completing)."""
        rows = (line.split("|") for line in self.run("squeue", "--noheader", "--format=%i|%j|%T|%C|%m").splitlines())
        return [Job(id, name, state, int(cpus), memory) for id, name, state, cpus, memory in rows]

    def node_state(self) -> str:
        """The node's state as sinfo reports it: idle, mixed, allocated, down, ..."""
        return self.run("sinfo", "--noheader", f"--nodes={self.node}", "--format=%T").strip()

    def logs(self) -> str:
        """The end of every daemon's log, to explain a failure."""
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
            for path in sorted((self.directory / "log").iterdir())
        )


@contextmanager
def slurm_cluster(directory: Path) -> Iterator[Slurm]:
    """Start munged, slurmctld and slurmd in ``directory``; yield once the node is idle.

    On exit every job still queued is cancelled (and its processes ended by slurmd) before the
    daemons are stopped, last started first, by their PIDs.
    """
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root: slurmd starts each job as the user who submitted it")
    for program in ("munged", "slurmctld", "slurmd", "sbatch"):
        assert shutil.which(program), f"{program} is not installed: `make test` installs Debian's slurm-wlm and munge"

    node = socket.gethostname().split(".")[0]  # slurmctld runs only where SlurmctldHost names this host
    slurm = Slurm(directory / "slurm.conf", node, directory)
    for folder in ("munge", "state", "spool", "log"):
        (directory / folder).mkdir(mode=0o700)
    key, munge_socket = directory / "munge" / "munge.key", directory / "munge" / "munge.socket"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    (directory / "plugstack.conf").touch()
    slurm.conf.write_text(_CONF.format(node=node, directory=directory, controller_port=free_port(),
                                       node_port=free_port(), munge_socket=munge_socket, cpus=CPUS, memory_mb=MEMORY_MB))

    with ExitStack() as stack:
        # --force: munged wants its socket's folders open to every user; this one is root's alone
        # (pytest's temporary folders are 0700), and root is the only user of this cluster
        daemons = [_start(stack, directory, "munged", "--foreground", "--force", f"--socket={munge_socket}",
               f"--key-file={key}", f"--log-file={directory}/log/munged.log", f"--pid-file={directory}/munge/munged.pid",
               f"--seed-file={directory}/munge/munged.seed")]
        _wait_for(munge_socket.exists, "munged's socket", slurm, daemons)
        daemons.append(_start(stack, directory, "slurmctld", "-D", "-f", str(slurm.conf)))
        daemons.append(_start(stack, directory, "slurmd", "-D", "-f", str(slurm.conf), "-N", node))
        _wait_for(lambda: _node_idle(slurm), f"node {node} to be idle", slurm, daemons)
        stack.callback(_cancel_all_jobs, slurm)  # runs before the daemons stop
        yield slurm


def _start(stack: ExitStack, directory: Path, program: str, *arguments: str) -> subprocess.Popen:
    """Start a daemon in the foreground (its output to log/<program>.out); stop it on exit."""
    with open(directory / "log" / f"{program}.out", "wb") as output:
        process = subprocess.Popen([program, *arguments], stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, "SLURM_CONF": str(directory / "slurm.conf")})
    stack.callback(stop_process, process, _STOP_TIMEOUT)
    return process


def _wait_for(check, what: str, slurm: Slurm, daemons: list[subprocess.Popen]) -> None:
    """Poll ``check()`` until it is true; fail with the daemons' logs when one exits or time is up."""
    deadline = time.monotonic() + _START_TIMEOUT
    while not check():
        if exited := [daemon.args[0] for daemon in daemons if daemon.poll() is not None]:
            raise RuntimeError(f"{', '.join(exited)} exited at start:\n{slurm.logs()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {_START_TIMEOUT:g} s waiting for {what}:\n{slurm.logs()}")
        time.sleep(0.05)


def _node_idle(slurm: Slurm) -> bool:
    try:
        return slurm.node_state() == "idle"
    except RuntimeError:  # slurmctld does not answer yet
        return False


def _cancel_all_jobs(slurm: Slurm) -> None:
    """Cancel every job and wait until the queue is empty, so that no job process outlives the cluster."""
    if jobs := slurm.jobs():
        slurm.run("scancel", *(job.id for job in jobs))
    deadline = time.monotonic() + _STOP_TIMEOUT
    while jobs := slurm.jobs():
        if time.monotonic() > deadline:
            raise RuntimeError(f"SLURM jobs {jobs} were still queued {_STOP_TIMEOUT:g} s after scancel")
        time.sleep(0.1)
