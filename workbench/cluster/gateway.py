"""Dask clusters from a dask-gateway server: ``wb.init(cluster="gateway://gateway.example.org:8000")``.

A dask-gateway (https://gateway.dask.org) starts Dask clusters for its users on whatever it fronts
(Kubernetes, YARN, a batch system or its own machine) behind one HTTP address. In Workbench its
address is written ``gateway://host:port`` (the gateway speaks HTTP) or ``gateway+https://host:port``
(HTTPS), so that it cannot be mistaken for a scheduler address. :func:`gateway_cluster` asks the
gateway for a new cluster, scales it to ``workers`` and returns once they have joined; closing the
returned cluster shuts it down on the gateway.

Worker cores and memory are cluster options, which each gateway defines for itself: Workbench sets
``worker_cores`` and ``worker_memory`` when the gateway exposes options by those names (a memory
option that is a number is read in GiB, as in dask-gateway's documentation) and passes any other
option by its name.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dask.utils import parse_bytes

from workbench.arguments import check_positive_int, duration_seconds, memory_bytes

if TYPE_CHECKING:
    from dask_gateway import Gateway, GatewayCluster
    from dask_gateway.auth import GatewayAuth
    from dask_gateway.options import Options

__all__ = ["AUTH_METHODS", "GATEWAY_SCHEMES", "gateway_address", "gateway_cluster"]

#: The schemes of a gateway URL in Workbench, and the protocol the gateway is reached with.
GATEWAY_SCHEMES = {"gateway": "http", "gateway+http": "http", "gateway+https": "https"}

#: Authentication methods by name, and dask-gateway's name for each.
AUTH_METHODS = {"simple": "basic", "basic": "basic", "kerberos": "kerberos", "jupyterhub": "jupyterhub"}

_POLL_SECONDS = 0.2


def gateway_address(url: str) -> str:
    """The HTTP(S) address of the gateway that a ``gateway://host:port`` URL names.

    ``gateway://host:port/prefix`` gives ``http://host:port/prefix``; ``gateway+https://`` gives
    ``https://``.
    """
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or parts.scheme.lower() not in GATEWAY_SCHEMES or not parts.hostname:
        raise ValueError(
            f"not a dask-gateway URL: {url!r}; expected gateway://host:port (HTTP) or "
            "gateway+https://host:port (HTTPS)"
        )
    try:
        parts.port  # noqa: B018 -- reading it checks it
    except ValueError as error:
        raise ValueError(f"not a dask-gateway URL: {url!r}: {error}") from None
    return f"{GATEWAY_SCHEMES[parts.scheme.lower()]}://{parts.netloc}{parts.path.rstrip('/')}"


def gateway_cluster(
    url: str,
    *,
    workers: int | None = None,
    worker_cores: int | None = None,
    worker_memory: str | int | None = None,
    auth: str | GatewayAuth | None = None,
    timeout: str | float = "2 minutes",
    **options: Any,
) -> GatewayCluster:
    """A new cluster from the dask-gateway at ``url``, returned once ``workers`` workers joined it.

    Args:
        url: the gateway, as ``gateway://host:port`` (HTTP) or ``gateway+https://host:port``.
        workers: how many workers to scale the cluster to; default: as many as the gateway starts
            a cluster with (often none, until it is scaled).
        worker_cores: cores of each worker (the gateway's ``worker_cores`` cluster option).
        worker_memory: memory of each worker, a size such as ``"4 GiB"`` or a number of bytes (the
            gateway's ``worker_memory`` cluster option; in GiB when that option is a number).
        auth: how to log in to the gateway: ``"simple"`` (HTTP basic: this user's name and an
            empty password), ``"kerberos"``, ``"jupyterhub"`` (the ``JUPYTERHUB_API_TOKEN``), or a
            ``dask_gateway`` auth object such as ``BasicAuth("alice", password)``. Default: the
            dask config ``gateway.auth``.
        timeout: how long to wait for the cluster to start and its workers to join.
        options: other cluster options of the gateway, by name (e.g. ``image="..."``).

    Returns:
        The running ``dask_gateway.GatewayCluster``; ``close()`` shuts it down on the gateway.

    Raises:
        ValueError: a URL that is not a gateway's, a bad count, size or duration, an unknown
            authentication name, a cluster option the gateway does not expose (the message lists
            those it does) or refuses, or more workers than the gateway allows a cluster.
        ConnectionError: the gateway cannot be reached (the message names it).
        PermissionError: the gateway refused the credentials.
        RuntimeError: the gateway could not start the cluster.
        TimeoutError: the cluster or its workers were not up within ``timeout``; the cluster is
            shut down.
    """
    address = gateway_address(url)
    for name, value in (("workers", workers), ("worker_cores", worker_cores)):
        if value is not None:
            check_positive_int(name, value)
    if worker_memory is not None:
        memory_bytes("worker_memory", worker_memory)
    seconds = duration_seconds("timeout", timeout)
    deadline = time.monotonic() + seconds
    credentials = _auth(auth)

    from dask_gateway import Gateway, GatewayCluster

    with _gateway_errors(address), Gateway(address, auth=credentials) as gateway:
        name = gateway.submit(_cluster_options(gateway, worker_cores, worker_memory, options))
        try:
            _wait_until_running(gateway, name, deadline, seconds)
            cluster = GatewayCluster.from_name(name, shutdown_on_close=True, address=address, auth=credentials)
        except BaseException:
            gateway.stop_cluster(name)
            raise
    try:
        if workers is not None:
            _scale(cluster, workers)
            _wait_for_workers(cluster, workers, deadline, seconds)
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


def _auth(auth: Any) -> GatewayAuth:
    """A dask-gateway auth object for a name, an auth object, or None (the dask config's)."""
    from dask_gateway.auth import GatewayAuth, get_auth

    if isinstance(auth, str):
        if auth not in AUTH_METHODS:
            raise ValueError(
                f"unknown dask-gateway authentication {auth!r}: expected one of "
                f"{', '.join(map(repr, AUTH_METHODS))} or a dask_gateway auth object"
            )
        return get_auth(AUTH_METHODS[auth])
    if auth is not None and not isinstance(auth, GatewayAuth):
        raise TypeError(f"auth must be a name or a dask_gateway auth object, not {type(auth).__name__}")
    return get_auth(auth)


@contextmanager
def _gateway_errors(address: str) -> Iterator[None]:
    """Say which gateway could not be reached, or refused us, instead of aiohttp's bare errors."""
    import aiohttp

    try:
        yield
    except aiohttp.ClientConnectionError as error:
        raise ConnectionError(
            f"could not reach the dask-gateway at {address} ({error}); check that it runs and the URL is right"
        ) from error
    except aiohttp.ClientResponseError as error:
        if error.status not in (401, 403):
            raise
        raise PermissionError(
            f"the dask-gateway at {address} refused the credentials (HTTP {error.status} {error.message}); "
            "pass auth= the method and credentials it expects, e.g. dask_gateway.BasicAuth(user, password)"
        ) from error


def _cluster_options(gateway: Gateway, worker_cores: int | None, worker_memory: Any, options: dict) -> Options:
    """The gateway's cluster options with the requested ones set, each checked by the gateway's rules."""
    cluster_options = gateway.cluster_options()
    requested = dict(options)
    if worker_cores is not None:
        requested["worker_cores"] = worker_cores
    if worker_memory is not None:
        requested["worker_memory"] = worker_memory
    unknown = [name for name in requested if name not in cluster_options]
    if unknown:
        raise ValueError(
            f"the dask-gateway at {gateway.address} has no cluster option {', '.join(map(repr, unknown))}; "
            f"it exposes: {', '.join(cluster_options) or 'none'}"
        )
    if worker_memory is not None:
        requested["worker_memory"] = _memory_option(cluster_options["worker_memory"], worker_memory)
    for name, value in requested.items():
        try:
            cluster_options[name] = value
        except (TypeError, ValueError) as error:
            raise ValueError(f"the dask-gateway's cluster option {name} does not take {value!r}: {error}") from None
    return cluster_options


def _memory_option(current: Any, size: str | int) -> Any:
    """A memory size the way the gateway's option holds it: GiB when the option is a number (an
    integer if it is a whole number of GiB), else the size as written."""
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        return str(size)
    gib = (parse_bytes(size) if isinstance(size, str) else size) / 2**30
    return int(gib) if isinstance(current, int) and gib.is_integer() else gib


def _wait_until_running(gateway: Gateway, name: str, deadline: float, seconds: float) -> None:
    """Poll the gateway until the cluster runs."""
    from dask_gateway.client import ClusterStatus

    while (status := gateway.get_cluster(name).status) is not ClusterStatus.RUNNING:
        if status in (ClusterStatus.FAILED, ClusterStatus.STOPPED):
            raise RuntimeError(
                f"the dask-gateway at {gateway.address} could not start the cluster {name} "
                f"(status {status.name.lower()}); its server log says why"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the dask-gateway at {gateway.address} did not start the cluster {name} within {seconds:g} s "
                f"(status {status.name.lower()}); it was stopped"
            )
        time.sleep(_POLL_SECONDS)


def _scale(cluster: GatewayCluster, workers: int) -> None:
    """Ask for ``workers`` workers; a gateway that caps them says so, which is an error here."""
    from dask_gateway import GatewayWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", GatewayWarning)
        try:
            cluster.scale(workers)
        except GatewayWarning as refusal:
            raise ValueError(f"the dask-gateway at {cluster.gateway.address} refused {workers} workers: {refusal}") from None


def _wait_for_workers(cluster: GatewayCluster, workers: int, deadline: float, seconds: float) -> None:
    from workbench.context import scheduler_workers

    with cluster.get_client(set_as_default=False) as client:
        try:
            client.wait_for_workers(workers, timeout=max(deadline - time.monotonic(), 0.001))
        except TimeoutError as error:
            raise TimeoutError(
                f"{len(scheduler_workers(client))} of {workers} Dask workers joined the gateway cluster "
                f"{cluster.name} within {seconds:g} s; the gateway may be short of resources (its server "
                "log says more). The cluster was shut down."
            ) from error
