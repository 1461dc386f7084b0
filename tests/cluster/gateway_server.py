"""A real dask-gateway server on this machine for the tests.

``dask-gateway-server`` runs as a subprocess with a configuration file in a temporary folder: its
HTTP and scheduler proxy on a free port of 127.0.0.1, its private API on another, simple (password)
authentication, and the local backend, which starts each cluster's scheduler and workers as
processes of this machine (``dask scheduler`` / ``dask worker`` of this virtual environment, bound to
127.0.0.1), at most ``MAX_WORKERS`` per cluster. Workers get ``worker_cores`` and ``worker_memory`` from the cluster options the server
exposes, the way dask-gateway's documentation sets them up (memory as a number of GiB).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from ..browser import free_port
from ..processes import stop_process

__all__ = ["MAX_WORKERS", "GatewayServer", "gateway_server"]

MAX_WORKERS = 2  # per cluster
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 20.0

_CONFIG = """\
from dask_gateway_server.options import Float, Integer, Options

c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.LocalBackend.clusters_directory = "{directory}/clusters"
c.LocalClusterConfig.scheduler_cmd = ["{dask}", "scheduler"]
c.LocalClusterConfig.worker_cmd = ["{dask}", "worker"]
c.LocalClusterConfig.cluster_max_workers = {max_workers}
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = "{password}"


def worker_resources(options):
    return {{"worker_cores": options.worker_cores, "worker_memory": int(options.worker_memory * 2**30)}}


c.Backend.cluster_options = Options(
    Integer("worker_cores", 1, min=1, max=2, label="Worker cores"),
    Float("worker_memory", 1, min=0.25, max=4, label="Worker memory (GiB)"),
    handler=worker_resources,
)
"""


@dataclass(frozen=True)
class GatewayServer:
    """A running gateway: the address users give Workbench, and the password it accepts."""

    port: int
    password: str
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"gateway://127.0.0.1:{self.port}"

    @property
    def http_address(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def gateway_server(directory: Path, password: str) -> Iterator[GatewayServer]:
    """Start ``dask-gateway-server`` configured in ``directory``; stop it (by PID) on exit, which
    also stops every cluster it still runs."""
    port = free_port()
    config = directory / "dask_gateway_config.py"
    config.write_text(_CONFIG.format(
        api_port=free_port(), port=port, directory=directory, password=password, max_workers=MAX_WORKERS,
        dask=Path(sys.executable).with_name("dask"),
    ))
    log = (directory / "gateway.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dask-gateway-server")), "--config", str(config)],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        server = GatewayServer(port, password, process)
        _wait_until_up(server, directory / "gateway.log")
        yield server
    finally:
        stop_process(process, _STOP_TIMEOUT)  # the server stops its clusters and proxy
        log.close()


def _wait_until_up(server: GatewayServer, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"dask-gateway-server exited with code {server.process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{server.http_address}/api/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"dask-gateway-server did not answer within {_START_TIMEOUT:g} s:\n{log.read_text()}")
        time.sleep(0.1)


