"""Dask workers as batch jobs: SLURM, PBS and SGE through dask-jobqueue.

``batch_cluster("slurm", workers=2)`` starts a Dask scheduler in this process and submits one batch
job per worker (``sbatch``, or ``qsub`` for PBS and SGE). Each job runs one worker process with
``worker_cores`` threads and ``worker_memory``, started by this process's Python (the same virtual
environment, which must therefore be on a filesystem the compute nodes share). The call returns once
every worker has joined, so ``wb.init(cluster=...)`` gets a cluster that is ready to train on; closing
the cluster cancels the jobs.

The jobs must reach the scheduler. By default it listens on every interface of this machine and
gives the jobs the address of its main network. On a cluster whose compute nodes talk over another
network, pass ``interface="ib0"`` (the scheduler and the workers use that interface), or
``scheduler_options={"interface": "eth1"}`` / ``{"host": "10.1.0.5"}`` for the scheduler alone.
The dashboard takes a free port (``scheduler_options={"dashboard_address": ":8787"}`` fixes one).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.arguments import check_positive_int, duration_seconds, memory_bytes

if TYPE_CHECKING:
    from dask_jobqueue import JobQueueCluster
    from distributed import Security

__all__ = ["BATCH_SCHEDULERS", "JOB_NAME", "batch_cluster", "default_log_directory"]

#: Each batch scheduler and its dask-jobqueue cluster class.
_CLUSTER_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster"}
BATCH_SCHEDULERS = tuple(_CLUSTER_CLASSES)

#: The command that shows what each batch scheduler says about some jobs (given their ids).
_QUEUE_VIEWS = {
    "slurm": lambda job_ids: ["squeue", "--jobs", ",".join(job_ids)],
    "pbs": lambda job_ids: ["qstat", *job_ids],
    "sge": lambda job_ids: ["qstat", "-j", ",".join(job_ids)],
}

#: The batch job name of every worker job, to find them in the queue.
JOB_NAME = "workbench-worker"

_LOG_LINES = 20  # the last lines of each job log quoted when workers do not join


def default_log_directory() -> Path:
    """Where the worker jobs write their logs unless told otherwise: under the user's state folder
    (``$XDG_STATE_HOME``, else ``~/.local/state``), as the home folder is shared with compute nodes."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "workbench" / "jobs"


def batch_cluster(
    scheduler: str,
    *,
    workers: int,
    worker_cores: int = 1,
    worker_memory: str | int = "2 GiB",
    queue: str | None = None,
    walltime: str | None = None,
    python: str | None = None,
    job_extra: list[str] | None = None,
    security: Security | None = None,
    timeout: str | float = "2 minutes",
    **options: Any,
) -> JobQueueCluster:
    """A Dask cluster whose workers are ``workers`` batch jobs, returned once they all joined.

    Args:
        scheduler: the batch system: ``"slurm"``, ``"pbs"`` or ``"sge"``.
        workers: how many worker jobs to submit (one worker process each).
        worker_cores: cores each job books, and threads its worker runs.
        worker_memory: memory each job books, and its worker's memory limit: a size such as
            ``"8 GiB"`` or a number of bytes.
        queue: the queue (SLURM partition) to submit to; default: the scheduler's default queue.
        walltime: each job's time limit, e.g. ``"02:00:00"``; default: dask-jobqueue's
            ``jobqueue.<scheduler>.walltime`` (30 minutes).
        python: the Python that runs the workers on the compute nodes (default: this one).
        job_extra: more directives for the job script header, e.g. ``["--gres=gpu:1"]``.
        security: a ``distributed.Security`` for TLS between scheduler, workers and clients.
        timeout: how long to wait for the workers to join (they may wait in the queue first).
        options: passed on to dask-jobqueue's cluster class: ``interface``, ``scheduler_options``,
            ``account``, ``log_directory`` (default :func:`default_log_directory`), ``job_name``,
            ``job_script_prologue`` (e.g. ``["module load cuda"]``) and the others it documents.

    Raises:
        ValueError: an unknown scheduler, a non-positive count, memory that is not a size, or a
            timeout that is not a duration.
        RuntimeError: the batch system refused the jobs (its error is quoted).
        TimeoutError: not every worker joined within ``timeout``; the message quotes the queue's
            view of the jobs and the end of their logs. The jobs are cancelled.
    """
    cluster_class = _cluster_class(scheduler)
    check_positive_int("workers", workers)
    check_positive_int("worker_cores", worker_cores)
    memory_bytes("worker_memory", worker_memory)
    seconds = duration_seconds("timeout", timeout)
    log_directory = Path(options.pop("log_directory", None) or default_log_directory()).expanduser()
    scheduler_options = {"dashboard_address": ":0", **(options.pop("scheduler_options", None) or {})}
    options.setdefault("job_name", JOB_NAME)

    cluster = cluster_class(
        cores=worker_cores,
        memory=worker_memory,
        processes=1,
        queue=queue,
        walltime=walltime,
        python=python or sys.executable,
        job_extra_directives=list(job_extra or []),
        security=security,
        log_directory=str(log_directory),
        scheduler_options=scheduler_options,
        **options,
    )
    try:
        _submit(cluster, workers)
        _wait_for_workers(cluster, scheduler, workers, seconds, log_directory)
    except BaseException:
        cluster.close()  # cancels whatever was submitted
        raise
    return cluster


def _cluster_class(scheduler: Any) -> type[JobQueueCluster]:
    if scheduler not in _CLUSTER_CLASSES:
        raise ValueError(
            f"unknown batch scheduler {scheduler!r}: expected one of {', '.join(map(repr, BATCH_SCHEDULERS))}"
        )
    try:
        import dask_jobqueue
    except ImportError as error:
        raise ImportError(f"a {scheduler} cluster needs dask-jobqueue: pip install dask-jobqueue") from error
    return getattr(dask_jobqueue, _CLUSTER_CLASSES[scheduler])


def _submit(cluster: JobQueueCluster, jobs: int) -> None:
    """Submit the worker jobs, raising the batch system's refusal (its error quoted) here.

    ``scale()`` submits in the background, where a refused job (an unknown queue, a walltime over
    the limit, no ``sbatch`` on this machine) is only logged; the same steps are taken here, on the
    cluster's event loop, and awaited.
    """
    from distributed.core import Status

    async def submit() -> None:
        while len(cluster.worker_spec) < jobs:
            cluster.worker_spec.update(cluster.new_worker_spec())
        await cluster._correct_state()

    try:
        cluster.sync(submit)
    except (RuntimeError, OSError) as error:
        for job in cluster.workers.values():
            if job.job_id is None:  # refused: nothing to cancel, which closing the cluster must know
                job.status = Status.failed
        command = cluster.job_cls.submit_command
        raise RuntimeError(f"{command} did not take the Dask worker jobs: {error}") from error


def _wait_for_workers(
    cluster: JobQueueCluster, scheduler: str, workers: int, timeout: float, log_directory: Path
) -> None:
    from distributed.exceptions import WorkerStartTimeoutError

    try:
        cluster.wait_for_workers(workers, timeout=timeout)
    except WorkerStartTimeoutError as error:
        job_ids = [str(job.job_id) for job in cluster.workers.values() if job.job_id]
        raise TimeoutError(
            f"{error.available_workers} of {workers} Dask workers joined within {timeout:g} s (jobs still "
            "queued need a longer timeout; a worker that failed says why in its job's log).\n"
            f"{_queue_view(scheduler, job_ids)}\n{_log_tails(log_directory, job_ids)}"
        ) from error


def _queue_view(scheduler: str, job_ids: list[str]) -> str:
    """What the batch system says about the jobs (or why it could not be asked)."""
    command = _QUEUE_VIEWS[scheduler](job_ids)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`{' '.join(command)}` failed: {error}"
    return f"`{' '.join(command)}` says:\n{done.stdout}{done.stderr}"


def _log_tails(log_directory: Path, job_ids: list[str]) -> str:
    """The last lines of the jobs' logs: the files in the log directory named with a job id."""
    ids = re.compile(rf"(?<!\d)({'|'.join(map(re.escape, job_ids))})(?!\d)") if job_ids else None
    tails = []
    for path in sorted(log_directory.glob("*")):
        lines = path.read_text(errors="replace").splitlines()[-_LOG_LINES:] if ids and ids.search(path.name) else []
        if any(lines):
            tails.append(f"--- {path} (last {len(lines)} lines)\n" + "\n".join(lines))
    return "\n".join(tails) or f"The jobs wrote nothing to their logs in {log_directory} yet."
