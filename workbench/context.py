"""The Workbench context: one entry point that gives the same code a cluster anywhere.

``wb.init()`` starts (or connects to) a Dask cluster and returns a :class:`Context`.
Which cluster is decided, in order, by the ``cluster`` argument, the environment variable
``WORKBENCH_CLUSTER``, the dask config key ``workbench.cluster``, and finally ``"local"``
(an embedded ``LocalCluster``). A notebook that calls ``wb.init()`` therefore runs
unchanged on a laptop and on a cluster: only the environment (or the kernel) differs.
TLS is switched on the same way: by the ``security`` argument or the dask config key
``workbench.security`` (see :mod:`workbench.cluster.tls`).
"""

from __future__ import annotations

import html
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.config
from dask.utils import format_bytes, parse_bytes, parse_timedelta

if TYPE_CHECKING:
    from distributed import Client, LocalCluster, Security
    from distributed.deploy import Cluster

__all__ = ["Context", "WorkerInfo", "init", "stop", "current", "local_cluster", "scheduler_workers", "tasks_in_flight"]

CLUSTER_ENV_VAR = "WORKBENCH_CLUSTER"
KERNEL_ENV_VAR = "WORKBENCH_KERNEL"  # "local" or "cluster" in the Workbench kernels (workbench.kernel)

dask.config.update_defaults({"workbench": {"cluster": None, "connect-timeout": "10s", "security": None,
                                           "workers": None, "worker-cores": None, "worker-memory": None,
                                           "queue": None, "environment": None}})

#: Communication schemes of distributed that name a scheduler address.
_ADDRESS_SCHEMES = ("tcp", "tls", "inproc", "ws", "wss", "ucx")
_SCHEME_ADDRESS = re.compile(rf"^({'|'.join(_ADDRESS_SCHEMES)})://\S+$")
_BARE_ADDRESS = re.compile(r"^[\w.\-]+:\d{1,5}$")  # host:port, read as tcp://host:port

_LOCAL_OPTIONS = ("workers", "threads_per_worker", "memory_limit")
#: batch schedulers whose worker jobs Workbench submits itself (through dask-jobqueue)
BATCH_SCHEDULERS = ("slurm", "pbs", "sge")
#: cluster settings whose workers Workbench starts itself: batch jobs, YARN containers, pods (dask-kubernetes)
LAUNCHED = (*BATCH_SCHEDULERS, "yarn", "kubernetes")
#: how a dask-gateway is named: a new cluster is asked of it (workbench.cluster.gateway)
GATEWAY_SCHEMES = ("gateway://", "gateway+https://")

_current: Context | None = None


@dataclass(frozen=True)
class WorkerInfo:
    """One Dask worker as the context sees it."""

    address: str
    name: str
    cores: int
    memory: int  # memory limit in bytes (0 when the worker has none)


class Context:
    """A connection to a Dask cluster, and the cluster itself when Workbench started it.

    Use :func:`init` to make one. The context closes the cluster on :meth:`close` only when it
    started that cluster; a cluster it merely connected to or adopted keeps running.
    """

    def __init__(self, client: Client, cluster: Cluster | None, kind: str, owns_cluster: bool):
        self.client = client
        self.cluster = cluster
        self.kind = kind
        self.owns_cluster = owns_cluster
        self.settings: dict[str, Any] = {}  # what init() was asked for, to recognise a re-run

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler.address

    @property
    def security(self) -> Security | None:
        """The TLS settings of this context's connections, or None when they are not encrypted."""
        return self.client.security if self.scheduler_address.startswith("tls://") else None

    @property
    def dashboard_link(self) -> str | None:
        """URL of the Dask dashboard, or None when the scheduler serves none."""
        try:
            return self.client.dashboard_link
        except KeyError:  # the scheduler runs without the dashboard service
            return None

    @property
    def workers(self) -> list[WorkerInfo]:
        """The workers currently connected, sorted by address."""
        info = scheduler_workers(self.client)
        return [
            WorkerInfo(
                address=address,
                name=str(w.get("name", address)),
                cores=int(w.get("nthreads", 0)),
                memory=int(w.get("memory_limit") or 0),
            )
            for address, w in sorted(info.items())
        ]

    @property
    def closed(self) -> bool:
        return self.client.status in ("closing", "closed")

    def close(self) -> None:
        """Disconnect; shut the cluster down too if this context started it."""
        global _current
        if _current is self:
            _current = None
        self.client.close()
        if self.owns_cluster and self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<workbench.Context {self.kind} (closed)>"
        workers = self.workers
        return (
            f"<workbench.Context {self.kind} scheduler={self.scheduler_address!r} "
            f"workers={len(workers)} cores={sum(w.cores for w in workers)} "
            f"dashboard={self.dashboard_link!r}>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In Jupyter, the live cluster widget; the static HTML table for other front ends."""
        bundle: dict[str, Any] = {"text/html": self._repr_html_()}
        if not self.closed:
            try:
                from workbench.widgets.cluster import ClusterWidget
            except ImportError:  # the "lab" extra (ipywidgets) is not installed
                pass
            else:
                bundle.update(ClusterWidget(self)._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = repr(self)
        return bundle

    def _repr_html_(self) -> str:
        if self.closed:
            return f"<p><b>Workbench context</b> ({html.escape(self.kind)}): closed</p>"
        workers = self.workers
        link = self.dashboard_link
        dashboard = (
            f'<a href="{html.escape(link)}" target="_blank">{html.escape(link)}</a>'
            if link
            else "not served"
        )
        rows = "".join(
            f"<tr><td>{html.escape(w.name)}</td><td><code>{html.escape(w.address)}</code></td>"
            f"<td>{w.cores}</td><td>{format_bytes(w.memory) if w.memory else '-'}</td></tr>"
            for w in workers
        )
        total_memory = sum(w.memory for w in workers)
        return (
            '<div class="workbench-context">'
            f"<p><b>Workbench context</b> &mdash; {html.escape(self.kind)} cluster</p>"
            "<table>"
            f"<tr><th>Scheduler</th><td><code>{html.escape(self.scheduler_address)}</code></td></tr>"
            f"<tr><th>Dashboard</th><td>{dashboard}</td></tr>"
            f"<tr><th>Workers</th><td>{len(workers)} workers, "
            f"{sum(w.cores for w in workers)} cores, {format_bytes(total_memory)}</td></tr>"
            "</table>"
            "<details><summary>Workers</summary><table>"
            "<tr><th>Name</th><th>Address</th><th>Cores</th><th>Memory</th></tr>"
            f"{rows}</table></details></div>"
        )


def init(
    cluster: str | Cluster | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | float | None = None,
    worker_cores: int | None = None,
    worker_memory: str | None = None,
    queue: str | None = None,
    timeout: str | float | None = None,
    security: Security | str | os.PathLike[str] | None = None,
    **cluster_options: Any,
) -> Context:
    """Start or connect to a Dask cluster and make it the current Workbench context.

    Args:
        cluster: ``"local"`` for an embedded ``LocalCluster``; a scheduler address such as
            ``"tcp://10.0.0.5:8786"``; ``"slurm"``, ``"pbs"`` or ``"sge"`` for workers that
            Workbench submits as batch jobs (:mod:`workbench.cluster.jobqueue`, closed by
            :func:`stop`); ``"yarn"`` for worker containers on Hadoop YARN running a packed
            ``environment=`` (default: this one, packed by :mod:`workbench.cluster.pack`;
            :mod:`workbench.cluster.yarn`); ``"kubernetes"`` for worker pods
            (:mod:`workbench.cluster.kubernetes`);
            ``"gateway://host:port"`` for a new cluster of a dask-gateway
            (:mod:`workbench.cluster.gateway`, shut down by :func:`stop`); or any ``distributed.deploy.Cluster`` object, which is adopted (and
            left running by :func:`stop`). When omitted, taken from the ``WORKBENCH_CLUSTER``
            environment variable or the ``workbench.cluster`` dask config, else ``"local"`` (an
            error in the Workbench (cluster) kernel, which never falls back).
        workers: number of local worker processes (default: one per core), or of worker jobs
            (default: the ``workbench.workers`` dask config).
        threads_per_worker: threads in each local worker (default 1).
        memory_limit: memory limit of each local worker, e.g. ``"4 GiB"`` (default: the
            machine's memory split evenly between workers).
        worker_cores, worker_memory, queue: each worker job's cores (its threads), memory and
            queue/partition (defaults: the ``workbench.worker-cores``, ``workbench.worker-memory``
            and ``workbench.queue`` dask config, else 1 core, 2 GiB and the scheduler's default).
        cluster_options: further options of the batch clusters, e.g. ``walltime="04:00:00"``,
            ``interface="ib0"``, ``job_extra=[...]`` (see :func:`~workbench.cluster.jobqueue.batch_cluster`).
        timeout: how long to try to reach a scheduler (default ``workbench.connect-timeout``,
            10 s).
        security: TLS for every scheduler, worker and client connection: a certificate
            directory written by ``workbench tls create`` (:mod:`workbench.cluster.tls`) or a
            ``distributed.Security``. When omitted, taken from the ``workbench.security`` dask
            config (a directory), else none. The local cluster then listens on ``tls://``; a
            ``tls://`` scheduler address needs it. An adopted cluster uses its own security
            unless this is given.

    Returns:
        The live context. Calling ``init()`` again returns it as long as it is open.
    """
    global _current
    requested = {
        "cluster": cluster,
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "memory_limit": memory_limit,
        "worker_cores": worker_cores,
        "worker_memory": worker_memory,
        "queue": queue,
        "security": security,
        **cluster_options,
    }
    options = {name: requested[name] for name in _LOCAL_OPTIONS}
    local_options = _validated_local_options(**options)  # a bad value is named even with a live context
    if _current is not None and not _current.closed:
        return _reuse(_current, requested)

    spec = _resolve_cluster(cluster)
    _check_options_apply(spec, {name: value for name, value in requested.items()
                                if name not in ("cluster", "security") and value is not None})
    connect_timeout = parse_timedelta(
        timeout if timeout is not None else dask.config.get("workbench.connect-timeout")
    )

    security_setting = _security_setting(security)
    tls = _load_security(security_setting)

    if spec == "local":
        _current = _start_local(**local_options, security=tls)
    elif spec in LAUNCHED:
        _current = _launch_jobs(spec, workers, worker_cores, worker_memory, queue, cluster_options, tls)
    elif isinstance(spec, str) and spec.startswith(GATEWAY_SCHEMES):
        _current = _launch_gateway(spec, workers, worker_cores, worker_memory, cluster_options, tls)
    elif isinstance(spec, str):
        _current = _connect(spec, connect_timeout, tls)
    else:
        _current = _adopt(spec, connect_timeout, tls)
    _current.settings = dict(requested, cluster=spec, security=security_setting)
    return _current


def stop() -> None:
    """Close the current context (and the cluster, if Workbench started it). No-op if none."""
    if _current is not None:
        _current.close()


def current() -> Context | None:
    """The live context, or None when :func:`init` has not been called (or was stopped)."""
    if _current is None or _current.closed:
        return None
    return _current


def scheduler_workers(client: Any, timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """The scheduler's workers (address -> info), asked for now (within ``timeout`` seconds).

    ``Client.scheduler_info()`` is not used: its answer can be the copy its periodic refresh
    just wrote, which lists no workers.
    """
    return client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=timeout)["workers"]


#: Worker task states that count as "in flight" (queued, running, or moving between workers).
_ACTIVE_STATES = ("executing", "ready", "waiting", "constrained", "fetch", "flight", "long-running")


def tasks_in_flight(worker: dict[str, Any]) -> int:
    """Tasks queued, running or moving on a worker, from its entry in :func:`scheduler_workers`."""
    counts = worker.get("metrics", {}).get("task_counts", {})
    return sum(int(counts.get(state, 0)) for state in _ACTIVE_STATES)


def _reuse(live: Context, requested: dict[str, Any]) -> Context:
    """Return the live context when every setting given now agrees with it, else refuse.

    A re-run notebook cell (``wb.init(workers=2)`` twice) gets the same context back.
    """
    given = {name: value for name, value in requested.items() if value is not None}
    if "cluster" in given:
        given["cluster"] = _resolve_cluster(given["cluster"])
    if "security" in given:
        given["security"] = _security_setting(given["security"])
    conflicts = {name: value for name, value in given.items() if live.settings.get(name) != value}
    if conflicts:
        raise RuntimeError(
            f"a Workbench context is already running ({live!r}) with other settings than "
            f"{conflicts}; call wb.stop() first"
        )
    return live


def _resolve_cluster(cluster: Any) -> Any:
    """Normalise the cluster setting to ``"local"``, an address string, or a Cluster object."""
    from distributed.deploy import Cluster

    source = "cluster argument"
    if cluster is None:
        if os.environ.get(CLUSTER_ENV_VAR):
            cluster, source = os.environ[CLUSTER_ENV_VAR], f"${CLUSTER_ENV_VAR}"
        elif dask.config.get("workbench.cluster", None):
            cluster, source = dask.config.get("workbench.cluster"), "dask config workbench.cluster"
        elif os.environ.get(KERNEL_ENV_VAR) == "cluster":
            raise ValueError(
                "the Workbench (cluster) kernel has no cluster configured: run `workbench config set "
                "cluster tcp://scheduler:8786` (your scheduler's address), then restart the kernel"
            )
        else:
            return "local"
    if isinstance(cluster, Cluster) or _is_gateway_cluster(cluster):
        return cluster
    if not isinstance(cluster, str):
        raise TypeError(
            f"cluster must be a string or a distributed.deploy.Cluster, not {type(cluster).__name__}"
        )
    text = cluster.strip()
    if text.lower() == "local" or text.lower() in LAUNCHED:
        return text.lower()
    if text.startswith(GATEWAY_SCHEMES):
        return text
    if _SCHEME_ADDRESS.match(text):
        return text
    if _BARE_ADDRESS.match(text):
        return f"tcp://{text}"
    raise ValueError(
        f"unknown cluster {cluster!r} (from {source}): expected 'local', a scheduler address "
        f"such as 'tcp://10.0.0.5:8786' (schemes: {', '.join(_ADDRESS_SCHEMES)}), a batch "
        f"scheduler ({', '.join(map(repr, BATCH_SCHEDULERS))}), 'kubernetes', a dask-gateway ('gateway://host:port', "
        "'gateway+https://host:port'), or a distributed.deploy.Cluster object"
    )


def _is_gateway_cluster(cluster: Any) -> bool:
    """A dask-gateway cluster, which is not a ``distributed.deploy.Cluster`` but is adopted like one."""
    gateway = sys.modules.get("dask_gateway")  # a GatewayCluster exists only once dask_gateway is imported
    return gateway is not None and isinstance(cluster, gateway.GatewayCluster)


def _security_setting(security: Any) -> Path | Security | None:
    """Normalise the security setting to None, an absolute certificate directory, or a ``Security``."""
    from distributed import Security

    source = "security argument"
    if security is None:
        security, source = dask.config.get("workbench.security", None), "dask config workbench.security"
        if security is None:
            return None
    if isinstance(security, Security):
        return security
    if isinstance(security, (str, os.PathLike)):
        return Path(security).expanduser().absolute()
    raise TypeError(
        f"security ({source}) must be a certificate directory or a distributed.Security, "
        f"not {type(security).__name__}"
    )


def _load_security(setting: Path | Security | None) -> Security | None:
    """The ``Security`` for a setting: a directory's certificates are read (and checked) now."""
    if isinstance(setting, Path):
        from workbench.cluster import tls

        return tls.security(setting)
    return setting


def _check_security(address: str, security: Security | None) -> None:
    """Refuse, saying what to do, a scheduler address and a security that cannot work together."""
    encrypted = address.startswith(("tls://", "gateway://"))  # a gateway's proxy speaks TLS
    # without security, a tls:// address can still work from distributed's own TLS config
    configured = dask.config.get("distributed.comm.tls.ca-file", None) or dask.config.get(
        "distributed.client.security-loader", None)
    if security is None and encrypted and not configured:
        raise ValueError(
            f"the scheduler {address} speaks TLS: pass security= (a directory written by "
            "`workbench tls create`, or a distributed.Security) or set the dask config workbench.security"
        )
    if security is not None and not encrypted and security.require_encryption:  # a gateway's has no such flag
        raise ValueError(
            f"TLS is required (security= or the dask config workbench.security) but {address} "
            "is not a tls:// address"
        )


def _validated_local_options(
    workers: int | None, threads_per_worker: int | None, memory_limit: Any
) -> dict[str, Any]:
    from dask.system import CPU_COUNT

    return {
        "workers": _positive_int("workers", workers, default=CPU_COUNT),
        "threads_per_worker": _positive_int("threads_per_worker", threads_per_worker, default=1),
        "memory_limit": _memory_limit(memory_limit),
    }


def _positive_int(name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _memory_limit(value: Any) -> Any:
    """Check a LocalCluster memory limit: 'auto', a size string, bytes, or a fraction."""
    if value is None or value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            nbytes = parse_bytes(value)
        except ValueError:
            nbytes = 0
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        nbytes = value
    else:
        nbytes = 0
    if not nbytes > 0:
        raise ValueError(
            "memory_limit must be 'auto', a size such as '4 GiB', a positive number of bytes "
            f"or a fraction of system memory, got {value!r}"
        )
    return value


def local_cluster(
    workers: int, threads_per_worker: int = 1, memory_limit: Any = "auto", security: Security | None = None
) -> LocalCluster:
    """A ``LocalCluster`` of worker processes on 127.0.0.1, set up for training.

    With a ``security`` that requires encryption (as a certificate directory's does), every
    connection (client, scheduler, workers, nannies) is TLS.
    Used by :func:`init` and by the JupyterLab extension's "New local cluster".
    """
    from distributed import LocalCluster

    # Dask sets MALLOC_TRIM_THRESHOLD_ in worker processes to hand memory back eagerly; for
    # training it turns every large temporary (activations, gradients) into fresh page faults
    # and cut training throughput up to 3x here, so Workbench's workers keep glibc's defaults.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port, never a fixed one
            security=security,  # one that requires encryption makes every address tls://
        )


def _start_local(workers: int, threads_per_worker: int, memory_limit: Any, security: Security | None) -> Context:
    return _owned(local_cluster(workers, threads_per_worker, memory_limit, security), "local")


def _owned(cluster: Any, kind: str, security: Security | None = None) -> Context:
    """A context connected to a cluster Workbench started (closed with it; closed now if connecting fails)."""
    from distributed import Client

    try:
        client = Client(cluster, set_as_default=True, security=security)
    except BaseException:
        cluster.close()
        raise
    return Context(client, cluster, kind=kind, owns_cluster=True)


def _connect(address: str, timeout: float, security: Security | None) -> Context:
    from distributed import Client

    _check_security(address, security)
    try:
        client = Client(address, timeout=timeout, set_as_default=True, security=security)
    except (OSError, TimeoutError) as error:
        raise ConnectionError(
            f"could not reach a Dask scheduler at {address} within {timeout:g} s ({error}); "
            "check that the scheduler is running and the address is right"
        ) from error
    return Context(client, None, kind="address", owns_cluster=False)


def _adopt(cluster: Cluster, timeout: float, security: Security | None) -> Context:
    from distributed import Client

    status = getattr(cluster, "status", None)
    if getattr(status, "name", status) in ("closing", "closed"):  # a GatewayCluster's status is a string
        raise ValueError(f"cannot adopt {_describe(cluster)}: it is closed")
    own_security = getattr(cluster, "security", None)  # what the client uses when security is None
    _check_security(cluster.scheduler_address, security if security is not None else own_security)
    client = Client(cluster, timeout=timeout, set_as_default=True, security=security)
    return Context(client, cluster, kind=type(cluster).__name__, owns_cluster=False)


def _check_options_apply(spec: Any, given: dict[str, Any]) -> None:
    """Refuse, naming them, sizing options that the chosen kind of cluster does not take."""
    if spec == "local":
        wrong = [name for name in given if name not in _LOCAL_OPTIONS]
        where = "the local cluster takes workers, threads_per_worker and memory_limit"
    elif spec in LAUNCHED:
        wrong = [name for name in given if name in ("threads_per_worker", "memory_limit")
                 or (name == "queue" and spec == "kubernetes") or (name == "environment" and spec != "yarn")]
        where = f"size {spec} workers with worker_cores and worker_memory"
    elif isinstance(spec, str) and spec.startswith(GATEWAY_SCHEMES):
        wrong = [name for name in given if name in ("threads_per_worker", "memory_limit", "queue")]
        where = "size gateway workers with worker_cores and worker_memory (the gateway's cluster options)"
    else:
        wrong = list(given)
        where = f"size the cluster {_describe(spec)} where it is launched"
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do not apply here: {where}")


def _launch_jobs(kind: str, workers: int | None, worker_cores: int | None, worker_memory: str | None,
                 queue: str | None, options: dict[str, Any], security: Security | None) -> Context:
    """Worker jobs submitted to a batch scheduler, or worker pods on Kubernetes; the context owns
    them (stop() cancels them).

    Sizes not given come from the dask config (``workbench.workers``, ``workbench.worker-cores``,
    ``workbench.worker-memory``, ``workbench.queue``), which the Workbench (cluster) kernel sets,
    else 1 core and 2 GiB per worker."""
    workers = workers if workers is not None else dask.config.get("workbench.workers", None)
    if workers is None:
        raise ValueError(f"wb.init(cluster={kind!r}) needs workers=N (the number of workers to start), "
                         "or the dask config workbench.workers")
    cores = worker_cores if worker_cores is not None else dask.config.get("workbench.worker-cores", None) or 1
    memory = worker_memory or dask.config.get("workbench.worker-memory", None) or "2 GiB"
    queue = queue or dask.config.get("workbench.queue", None)
    if kind == "yarn":
        return _owned(_yarn_cluster(workers, cores, memory, queue, options, security), kind, security)
    if kind == "kubernetes":
        from workbench.cluster.kubernetes import kube_cluster

        if security is not None:
            raise ValueError("security= does not apply to Kubernetes clusters here: the operator sets up their comms")
        cluster = kube_cluster(workers=workers, worker_cores=cores, worker_memory=memory, **options)
    else:
        from workbench.cluster.jobqueue import batch_cluster

        cluster = batch_cluster(kind, workers=workers, worker_cores=cores, worker_memory=memory, security=security,
                                **({"queue": queue} if queue else {}), **options)
    return _owned(cluster, kind, security)


def _yarn_cluster(workers: int, cores: int, memory: str, queue: str | None, options: dict[str, Any],
                  security: Security | None) -> Cluster:
    """Worker containers on YARN, running the packed ``environment``: the option, else the dask
    config ``workbench.environment``, else this environment packed now (cached by its packages).
    A local archive must match this environment (Python and packages); returned once ``workers``
    joined (closed if they do not)."""
    from workbench.cluster.pack import check_environment, pack_environment
    from workbench.cluster.yarn import YarnCluster, check_yarn_client

    options = dict(options)
    environment = options.pop("environment", None) or dask.config.get("workbench.environment", None)
    if environment is not None and "://" not in str(environment):  # hdfs:// archives are not read here
        check_environment(environment)
    check_yarn_client()  # before packing, which takes a minute the first time
    if environment is None:
        environment = pack_environment()
    timeout = options.pop("start_timeout", "10 minutes")
    cluster = YarnCluster(environment=environment, workers=workers, worker_cores=cores, worker_memory=memory,
                          queue=queue, security=security, **options)
    try:
        cluster.wait_for_workers(workers, timeout=parse_timedelta(timeout))
    except BaseException:
        cluster.close()
        raise
    return cluster


def _launch_gateway(url: str, workers: int | None, worker_cores: int | None, worker_memory: str | None,
                    options: dict[str, Any], security: Security | None) -> Context:
    """A new cluster of the dask-gateway at ``url``; the context owns it (stop() shuts it down).
    The gateway's proxy carries its own TLS, so ``security`` does not apply."""
    from workbench.cluster.gateway import gateway_cluster

    if security is not None:
        raise ValueError("security= does not apply to a dask-gateway: the gateway gives each cluster its own TLS")
    return _owned(gateway_cluster(url, workers=workers, worker_cores=worker_cores, worker_memory=worker_memory,
                                  **options), "gateway")


def _describe(spec: Any) -> str:
    return repr(spec) if isinstance(spec, str) else type(spec).__name__
