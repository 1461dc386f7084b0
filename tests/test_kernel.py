"""The Workbench kernels, installed with `workbench kernels install` and started by jupyter_client.

The same notebook code runs in both kernels; only the kernel (and, for the cluster kernel, the
user config) decides where it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dask.system import CPU_COUNT
from distributed import Client
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

USER_CODE = "import workbench as wb; ctx = wb.init(); print(ctx.kind, len(ctx.workers)); wb.stop()"
KERNELS = {"workbench-local": "Workbench (local)", "workbench-cluster": "Workbench (cluster)"}


def workbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """A Jupyter prefix holding both kernelspecs, installed by the command line."""
    prefix = tmp_path_factory.mktemp("prefix")
    result = workbench("kernels", "install", "--prefix", str(prefix))
    assert result.returncode == 0, result.stderr
    assert all(f"kernels/{name}" in result.stdout for name in KERNELS)
    return prefix


@pytest.fixture
def kernel_env(tmp_path) -> dict[str, str]:
    """The environment a Jupyter server would give the kernels: a user config of our own, no cluster."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("WORKBENCH_")}
    env["WORKBENCH_CONFIG"] = str(tmp_path / "config.yaml")
    env["WORKBENCH_CLUSTER"] = "local"  # what `make lab` sets; the cluster kernel must not follow it
    return env


def test_jupyter_sees_both_kernels_running_this_interpreter(prefix):
    env = {**os.environ, "JUPYTER_PATH": str(prefix / "share" / "jupyter")}
    listing = subprocess.run([str(Path(sys.executable).with_name("jupyter")), "kernelspec", "list", "--json"],
                             capture_output=True, text=True, timeout=60, env=env, check=True)
    specs = json.loads(listing.stdout)["kernelspecs"]
    for name, display_name in KERNELS.items():
        spec = specs[name]["spec"]
        assert spec["display_name"] == display_name and spec["language"] == "python"
        assert spec["argv"][0] == sys.executable
        assert {"logo-32x32.png", "logo-64x64.png"} <= {p.name for p in Path(specs[name]["resource_dir"]).iterdir()}

    listed = workbench("kernels", "list", env=env)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == sorted(KERNELS)


def run_in_kernel(manager: KernelManager, code: str) -> tuple[str, dict]:
    """Execute ``code`` in the kernel; its stdout and the execute reply's content."""
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        stdout: list[str] = []

        def collect(message: dict) -> None:
            if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
                stdout.append(message["content"]["text"])

        reply = client.execute_interactive(code, output_hook=collect, timeout=120)
        return "".join(stdout), reply["content"]
    finally:
        client.stop_channels()


def start_kernel(prefix: Path, name: str, env: dict[str, str]) -> KernelManager:
    specs = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    manager = KernelManager(kernel_spec_manager=specs, kernel_name=name)
    manager.start_kernel(env=env)
    return manager


def test_local_kernel_runs_on_an_embedded_cluster(prefix, kernel_env):
    kernel_env["WORKBENCH_CLUSTER"] = "tcp://127.0.0.1:9"  # ignored: the local kernel is always local
    manager = start_kernel(prefix, "workbench-local", kernel_env)
    try:
        stdout, reply = run_in_kernel(manager, USER_CODE)
    finally:
        manager.shutdown_kernel(now=True)
    assert reply["status"] == "ok", reply
    assert stdout == f"local {CPU_COUNT}\n"


def test_cluster_kernel_runs_on_the_configured_cluster(prefix, kernel_env, cli_cluster):
    address, _ = cli_cluster
    with Client(address) as probe:
        probe.wait_for_workers(2, timeout=60)

    manager = start_kernel(prefix, "workbench-cluster", kernel_env)
    try:
        stdout, reply = run_in_kernel(manager, USER_CODE)  # nothing configured yet: a clear error
        assert reply["status"] == "error" and reply["ename"] == "ValueError"
        assert "Workbench (cluster) kernel has no cluster configured" in reply["evalue"]
        assert "workbench config set cluster tcp://scheduler:8786" in reply["evalue"]

        # the whole migration: set the cluster, restart the kernel, run the same code
        assert workbench("config", "set", "cluster", address, env=kernel_env).returncode == 0
        manager.restart_kernel(now=True)
        stdout, reply = run_in_kernel(manager, USER_CODE)
    finally:
        manager.shutdown_kernel(now=True)
    assert reply["status"] == "ok", reply
    assert stdout == "address 2\n"
