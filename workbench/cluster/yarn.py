"""Dask workers as YARN containers: a ``distributed.deploy.Cluster`` built on skein.

``YarnCluster(environment="env.tar.gz", workers=4, worker_cores=2, worker_memory="8 GiB")`` asks YARN
for an application whose service ``dask.worker`` runs one ``dask worker`` per container, each with
``worker_cores`` threads and ``worker_memory``; ``scale``, ``adapt``, ``close``, ``get_logs``,
``dashboard_link`` and ``scheduler_info`` behave as on any Dask cluster, so JupyterLab's sidebar and
widgets manage it like the others. A worker container that fails is restarted by YARN.

The containers run Python from ``environment``: an archive of a Python environment (``venv-pack`` or
``conda-pack``) holding Workbench with its ``yarn`` extra (skein), which YARN unpacks in every
container. Where the Dask scheduler runs is the ``deploy_mode``:

- ``"local"`` (default): in this process, listening on this machine's network. Its address is known
  before the application is submitted, so the workers get it in their environment
  (``DASK_SCHEDULER_ADDRESS``). The containers must reach this machine.
- ``"remote"``: in a container of its own (service ``dask.scheduler``), which publishes its address to
  the application's key-value store (key ``dask.scheduler``), where the workers and this process read
  it. Only the application master and the scheduler need to be reachable from here.

Nothing of skein or Hadoop is needed to build an application specification
(:func:`application_spec`); starting a cluster needs skein, Java, Hadoop's ``yarn`` command and the
cluster's Hadoop configuration, which :func:`check_yarn_client` checks before anything starts.
dask-yarn, the usual route, no longer imports with current ``distributed``; this module replaces it.
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from distributed.deploy import Cluster

from workbench.arguments import memory_bytes

if TYPE_CHECKING:
    import skein
    from distributed import Scheduler, Security
    from distributed.utils import Logs

__all__ = ["DEPLOY_MODES", "SCHEDULER_KEY", "SCHEDULER_SERVICE", "WORKER_SERVICE", "YarnCluster",
           "application_spec", "check_yarn_client", "dask_setup"]

WORKER_SERVICE = "dask.worker"
SCHEDULER_SERVICE = "dask.scheduler"
#: The key under which a scheduler in a container publishes its address (deploy mode "remote").
SCHEDULER_KEY = "dask.scheduler"
DEPLOY_MODES = ("local", "remote")
#: The variable that gives the workers the address of a scheduler running in this process.
ADDRESS_VARIABLE = "DASK_SCHEDULER_ADDRESS"

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")  # the archives YARN unpacks (skein infers the type from these)
_SCHEDULER_VCORES, _SCHEDULER_MEMORY_MIB = 1, 2048  # the scheduler container of deploy mode "remote"
_MIB = 2**20
#: a conda-pack archive's script that rewrites the packing machine's paths in conda's files
_CONDA_UNPACK = "if [ -x environment/bin/conda-unpack ]; then environment/bin/conda-unpack; fi"

#: The certificate files a TLS cluster ships to the containers: (name in the container, Security field).
_TLS_FILES = {
    "worker": (("tls-ca.pem", "tls_ca_file"), ("tls-worker.pem", "tls_worker_cert"),
               ("tls-worker-key.pem", "tls_worker_key")),
    "scheduler": (("tls-ca.pem", "tls_ca_file"), ("tls-scheduler.pem", "tls_scheduler_cert"),
                  ("tls-scheduler-key.pem", "tls_scheduler_key")),
}
#: The ``dask`` command line option that takes each of those files.
_TLS_OPTIONS = {"tls_ca_file": "--tls-ca-file", "tls_worker_cert": "--tls-cert", "tls_worker_key": "--tls-key",
                "tls_scheduler_cert": "--tls-cert", "tls_scheduler_key": "--tls-key"}


def application_spec(
    *,
    environment: str | os.PathLike[str],
    workers: int = 0,
    worker_cores: int = 1,
    worker_memory: str | int = "2 GiB",
    queue: str | None = None,
    name: str = "workbench",
    deploy_mode: str = "local",
    worker_restarts: int = -1,
    worker_env: dict[str, str] | None = None,
    worker_options: Sequence[str] = (),
    security: Security | None = None,
) -> skein.ApplicationSpec:
    """The skein application that runs a Dask cluster's workers (and, in deploy mode "remote", its scheduler).

    Args:
        environment: the Python environment of the containers: a local ``.tar.gz``/``.tgz``/``.zip``
            archive (``venv-pack``, ``conda-pack``) or an ``hdfs://`` URL of one.
        workers: worker containers started with the application (``scale`` changes it later).
        worker_cores: vcores each worker container books, and threads its worker runs.
        worker_memory: memory each worker container books (rounded up to MiB), and its worker's
            memory limit: a size such as ``"8 GiB"`` or a number of bytes.
        queue: the YARN queue; default: YARN's default queue.
        name: the application name YARN shows.
        deploy_mode: ``"local"`` (the scheduler runs in the submitting process) or ``"remote"``
            (in a container).
        worker_restarts: how many failed worker containers YARN restarts, in all (-1: without limit).
        worker_env: more environment variables for the worker containers.
        worker_options: more ``dask worker`` options, e.g. ``["--interface", "ib0"]`` or
            ``["--resources", "GPU=1"]``.
        security: TLS: a ``distributed.Security`` naming certificate files (as
            :func:`workbench.cluster.tls.security` makes); the files are shipped with the containers.

    Raises:
        ValueError: a bad value, named.
    """
    skein = _skein()
    _check_count("workers", workers, minimum=0)
    _check_count("worker_cores", worker_cores, minimum=1)
    _check_count("worker_restarts", worker_restarts, minimum=-1)
    if deploy_mode not in DEPLOY_MODES:
        raise ValueError(f"deploy_mode must be one of {', '.join(map(repr, DEPLOY_MODES))}, got {deploy_mode!r}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise ValueError(f"queue must be a queue name or None, got {queue!r}")
    if isinstance(worker_options, str) or not all(isinstance(option, str) for option in worker_options):
        raise ValueError(f"worker_options must be a list of strings, got {worker_options!r}")
    if worker_env is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in worker_env.items()):
        raise ValueError(f"worker_env must map names to strings, got {worker_env!r}")
    memory_mib = _memory_mib(worker_memory)
    archive = _environment_source(environment)

    worker_tls = _tls_files(security, "worker")
    worker_command = ["dask", "worker", "$scheduler", "--name", "$SKEIN_CONTAINER_ID",
                      "--nthreads", str(worker_cores), "--memory-limit", f"{memory_mib}MiB",
                      "--no-nanny", "--local-directory", "$PWD",  # YARN restarts the container; it cleans up $PWD
                      *_tls_options(worker_tls), *map(shlex.quote, worker_options)]
    services = {WORKER_SERVICE: skein.Service(
        instances=workers,
        resources=skein.Resources(vcores=worker_cores, memory=memory_mib),
        max_restarts=worker_restarts,
        files={"environment": archive, **{target: source for target, (_, source) in worker_tls.items()}},
        env=dict(worker_env or {}),
        script=_script(
            f'scheduler="${{{ADDRESS_VARIABLE}:-$(skein kv get current --key {SCHEDULER_KEY} --wait)}}"',
            " ".join(_quoted(worker_command)),
        ),
        depends=[SCHEDULER_SERVICE] if deploy_mode == "remote" else None,
    )}
    if deploy_mode == "remote":
        scheduler_tls = _tls_files(security, "scheduler")
        scheduler_command = ["dask", "scheduler", "--port", "0", "--dashboard-address", ":0",
                             "--preload", __name__, *(["--protocol", "tls"] if security else []),
                             *_tls_options(scheduler_tls)]
        services[SCHEDULER_SERVICE] = skein.Service(
            instances=1,
            resources=skein.Resources(vcores=_SCHEDULER_VCORES, memory=_SCHEDULER_MEMORY_MIB),
            max_restarts=0,  # the workers know this scheduler's address only
            files={"environment": archive, **{target: source for target, (_, source) in scheduler_tls.items()}},
            script=_script(" ".join(scheduler_command)),
        )
    return skein.ApplicationSpec(name=name, queue=queue or "default", services=services)


def check_yarn_client() -> None:
    """Raise ``RuntimeError`` naming everything missing to submit YARN applications from this machine.

    skein (the YARN client library), Java (which runs skein's driver), Hadoop's ``yarn`` command (whose
    ``yarn classpath`` gives the driver its Hadoop libraries) and the cluster's Hadoop configuration
    (a directory with ``yarn-site.xml``) are all needed.
    """
    missing = []
    try:
        _skein()
    except ImportError as error:
        missing.append(str(error))
    java = Path(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if java is None or not Path(java).is_file():
        missing.append("Java (no `java` on PATH nor in $JAVA_HOME/bin): install a JDK 8 or later")
    yarn = shutil.which("yarn")
    if yarn is None:
        missing.append("Hadoop's `yarn` command (not on PATH): install the Hadoop client of your cluster "
                       "and put its bin directory on PATH")
    elif (problem := _classpath_problem(yarn)) is not None:
        missing.append(f"Hadoop's `yarn` command (`{yarn} classpath --glob`, which skein runs, {problem}; "
                       "is it another program called yarn?)")
    folders = _configuration_folders()
    if not any((folder / "yarn-site.xml").is_file() for folder in folders):
        missing.append(f"the Hadoop configuration (no yarn-site.xml in {', '.join(map(str, folders))}): set "
                       "HADOOP_CONF_DIR to the directory with your cluster's core-site.xml and yarn-site.xml")
    if missing:
        raise RuntimeError("a YARN cluster cannot be started from this machine; it lacks " + "; ".join(missing))


def dask_setup(scheduler: Scheduler) -> None:
    """Publish the scheduler's address to the YARN application's key-value store.

    Run by ``dask scheduler --preload workbench.cluster.yarn`` in the scheduler container of deploy
    mode "remote", once the scheduler listens; the workers and the submitting process wait for it.
    """
    import skein

    skein.ApplicationClient.from_current().kv[SCHEDULER_KEY] = scheduler.address.encode()


class YarnCluster(Cluster):
    """A Dask cluster whose workers are YARN containers (see the module documentation).

    Args:
        environment, workers, worker_cores, worker_memory, queue, name, deploy_mode, worker_restarts,
            worker_env, worker_options, security: the application, as for :func:`application_spec`.
        scheduler_options: options of the scheduler started in this process (deploy mode "local"),
            e.g. ``{"host": "10.1.0.5"}``, ``{"interface": "ib0"}`` or ``{"dashboard_address": ":8787"}``
            (default: every interface, and a free dashboard port).
        submit: submit the application now. With False (deploy mode "local" only), only the scheduler
            starts: workers can join it from elsewhere (``dask worker <address>``) and :meth:`submit`
            asks YARN for the containers later.

    Raises:
        ValueError: a bad value, named (before anything starts).
        RuntimeError: what this machine lacks to talk to YARN (before anything starts), or an
            application that did not start (with the command that shows its logs).
    """

    def __init__(
        self,
        *,
        environment: str | os.PathLike[str],
        workers: int = 0,
        worker_cores: int = 1,
        worker_memory: str | int = "2 GiB",
        queue: str | None = None,
        name: str = "workbench",
        deploy_mode: str = "local",
        worker_restarts: int = -1,
        worker_env: dict[str, str] | None = None,
        worker_options: Sequence[str] = (),
        security: Security | None = None,
        scheduler_options: dict[str, Any] | None = None,
        submit: bool = True,
    ):
        self.spec = application_spec(
            environment=environment, workers=workers, worker_cores=worker_cores, worker_memory=worker_memory,
            queue=queue, name=name, deploy_mode=deploy_mode, worker_restarts=worker_restarts,
            worker_env=worker_env, worker_options=worker_options, security=security)
        if not submit and deploy_mode == "remote":
            raise ValueError("submit=False needs deploy_mode='local': a remote scheduler starts with the application")
        if submit:
            check_yarn_client()
        self.deploy_mode = deploy_mode
        self.security = security
        self.scheduler: Scheduler | None = None  # the scheduler of deploy mode "local"
        self.application: skein.ApplicationClient | None = None
        self._skein: skein.Client | None = None
        self._scheduler_options = {"dashboard_address": ":0", **(scheduler_options or {})}
        super().__init__(name=name)
        self._loop_runner.start()
        try:
            self.sync(self._start, submit)
        except BaseException:
            self.close()
            raise

    async def _start(self, submit: bool) -> None:
        from distributed import Scheduler
        from distributed.core import rpc

        if self.deploy_mode == "local":
            self.scheduler = await Scheduler(
                security=self.security, protocol="tls" if self.security else None, **self._scheduler_options)
            self.spec.services[WORKER_SERVICE].env[ADDRESS_VARIABLE] = self.scheduler.address
        address = await self._submit() if submit else self.scheduler.address
        connection_args = self.security.get_connection_args("client") if self.security else {}
        self.scheduler_comm = rpc(address, connection_args=connection_args)
        await super()._start()

    def submit(self) -> None:
        """Submit the YARN application (for a cluster made with ``submit=False``)."""
        if self.application is not None:
            raise RuntimeError(f"the YARN application {self.application.id} is already submitted")
        check_yarn_client()
        self.sync(self._submit)

    async def _submit(self) -> str:
        """Submit the application; return the scheduler's address (read from the application in deploy mode "remote")."""
        return await asyncio.to_thread(self._submit_application)

    def _submit_application(self) -> str:
        skein = _skein()
        self._skein = skein.Client()  # starts skein's Java driver, which talks to YARN
        app_id = self._skein.submit(self.spec)
        try:
            application = self._skein.connect(app_id)  # waits until the application runs
            address = self.scheduler.address if self.deploy_mode == "local" else (
                application.kv.wait(SCHEDULER_KEY).decode())
        except BaseException as error:
            with suppress(skein.SkeinError):
                self._skein.kill_application(app_id)
            if isinstance(error, skein.ConnectionError):  # the application stopped
                raise RuntimeError(f"the YARN application {app_id} stopped before its Dask cluster ran ({error}); "
                                   f"its logs: yarn logs -applicationId {app_id}") from error
            raise
        self.application = application
        return address

    @property
    def workers(self) -> dict[str, skein.Container]:
        """The worker containers YARN runs or was asked for, by container id (the workers' names)."""
        if self.application is None:
            return {}
        return {c.id: c for c in self.application.get_containers(services=[WORKER_SERVICE])}

    def scale(self, n: int) -> Any:
        """Run ``n`` worker containers: start more, or retire workers and stop their containers."""
        _check_count("n", n, minimum=0)
        if self.application is None:
            raise RuntimeError("the YARN application is not submitted yet: call submit() first")
        return self.sync(self._scale, n)

    async def _scale(self, n: int) -> None:
        containers = await asyncio.to_thread(lambda: list(self.workers))
        if n >= len(containers):
            await asyncio.to_thread(self.application.scale, WORKER_SERVICE, count=n)
            return
        surplus = len(containers) - n
        to_close = [name for name in containers if name not in self.observed][:surplus]  # not joined yet
        if len(to_close) < surplus:
            to_close += await self.scheduler_comm.workers_to_close(n=surplus - len(to_close), attribute="name")
        await self._scale_down(to_close)

    def scale_down(self, workers: Sequence[str]) -> Any:
        """Retire these workers (by name) and stop their containers; what ``Adaptive`` calls."""
        return self.sync(self._scale_down, list(workers))

    async def _scale_down(self, workers: list[str]) -> None:
        await self.scheduler_comm.retire_workers(names=workers, remove=True, close_workers=True)
        if self.application is not None:
            for name in workers:
                with suppress(ValueError, KeyError):  # not a container of this application, or gone already
                    await asyncio.to_thread(self.application.kill_container, name)

    async def _get_logs(self, cluster: bool = True, scheduler: bool = True, workers: Any = True) -> Logs:
        """The base logs, and with ``cluster`` each container's YARN log (aggregated once the application ended)."""
        from distributed.utils import Log

        logs = await super()._get_logs(cluster=cluster, scheduler=scheduler, workers=workers)
        if cluster and self.application is not None:
            app_id = self.application.id
            try:
                containers = await asyncio.to_thread(self._skein.application_logs, app_id)
            except Exception as error:  # YARN has them only after log aggregation
                logs["YARN"] = Log(f"YARN has no logs of {app_id} yet ({error}); once it finished: "
                                   f"yarn logs -applicationId {app_id}")
            else:
                logs.update({container: Log(text) for container, text in containers.items()})
        return logs

    def close(self, timeout: float | None = None) -> None:
        """Shut the YARN application down (its containers stop), then the scheduler of this process."""
        super().close(timeout)
        self._loop_runner.stop()

    async def _close(self) -> None:
        from distributed.core import Status

        if self.status == Status.closed:
            return
        await super()._close()
        if self.application is not None:
            with suppress(_skein().SkeinError):  # an application that stopped already
                await asyncio.to_thread(self.application.shutdown, "SUCCEEDED")
        if self._skein is not None:
            await asyncio.to_thread(self._skein.close)  # stops skein's Java driver
        if self.scheduler is not None:
            await self.scheduler.close()


def _skein() -> Any:
    """The skein module, or an ImportError saying how to install it."""
    try:
        import skein
    except ImportError as error:
        raise ImportError("skein, the YARN client library, is not installed: pip install 'workbench[yarn]' "
                          "(or pip install skein)") from error
    return skein


def _classpath_problem(yarn: str) -> str | None:
    """What is wrong with ``yarn classpath --glob`` (how skein finds the Hadoop libraries), or None."""
    try:
        done = subprocess.run([yarn, "classpath", "--glob"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"failed: {error}"
    if done.returncode != 0 or ".jar" not in done.stdout:
        return f"exited with code {done.returncode} without a classpath: {(done.stderr or done.stdout).strip()[:200]}"
    return None


def _configuration_folders() -> list[Path]:
    """Where Hadoop's ``yarn`` command reads the cluster configuration from."""
    given = [Path(os.environ[name]) for name in ("HADOOP_CONF_DIR", "YARN_CONF_DIR") if os.environ.get(name)]
    if given:
        return given
    home = [Path(os.environ["HADOOP_HOME"], "etc", "hadoop")] if os.environ.get("HADOOP_HOME") else []
    return [*home, Path("/etc/hadoop/conf")]


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


def _memory_mib(value: Any) -> int:
    """A size such as ``"8 GiB"`` or a number of bytes, in MiB rounded up (what YARN books)."""
    return math.ceil(memory_bytes("worker_memory", value) / _MIB)


def _environment_source(environment: Any) -> str:
    """The archive YARN unpacks into each container: a local file (made absolute) or an ``hdfs://`` URL."""
    text = os.fspath(environment) if isinstance(environment, (str, os.PathLike)) else None
    problem = None
    if text is None:
        problem = "it is not a path"
    elif not text.endswith(_ARCHIVE_SUFFIXES):
        problem = f"it is not a {'/'.join(_ARCHIVE_SUFFIXES)} archive"
    elif urlparse(text).scheme == "hdfs":
        return text
    elif urlparse(text).scheme not in ("", "file"):
        problem = "only local paths and hdfs:// URLs are shipped"
    elif not Path(urlparse(text).path).expanduser().is_file():
        problem = "no such file"
    if problem:
        raise ValueError(f"environment must be a .tar.gz/.tgz/.zip archive of a Python environment (venv-pack, "
                         f"conda-pack) or an hdfs:// URL of one; {environment!r}: {problem}")
    return str(Path(urlparse(text).path).expanduser().absolute())


def _tls_files(security: Security | None, role: str) -> dict[str, tuple[str, str]]:
    """The certificate files for one role: name in the container -> (Security field, local path)."""
    if security is None:
        return {}
    files = {}
    for target, field in _TLS_FILES[role]:
        value = getattr(security, field, None)
        if field.endswith("_key") and value is None:  # the key may be inside the certificate file
            continue
        if not isinstance(value, str) or "-----BEGIN" in value or not Path(value).is_file():
            raise ValueError(f"security.{field} must name a certificate file to ship to the containers (a "
                             f"directory written by `workbench tls create`), got {_shortened(value)!r}")
        files[target] = (field, str(Path(value).absolute()))
    return files


def _tls_options(files: dict[str, tuple[str, str]]) -> list[str]:
    return [part for target, (field, _) in files.items() for part in (_TLS_OPTIONS[field], target)]


def _shortened(value: Any) -> Any:
    return value[:40] + "..." if isinstance(value, str) and len(value) > 40 else value


def _quoted(command: list[str]) -> list[str]:
    """Shell words: ``$NAME`` kept as a quoted expansion, the rest quoted literally."""
    return [f'"{word}"' if word.startswith("$") else word for word in command]


def _script(*lines: str) -> str:
    """A container's bash script: stop at the first failure, in the unpacked environment."""
    return "\n".join(["set -e", "source environment/bin/activate", _CONDA_UNPACK, *lines[:-1], f"exec {lines[-1]}"])
