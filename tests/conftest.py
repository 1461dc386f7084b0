"""Shared fixtures: real Dask clusters (worker processes), JupyterLab, Chromium and Redis servers that
the tests start and stop."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import workbench as wb

from .browser import JupyterLab, chromium, free_port
from .processes import stop_process

DASK_CLI = [str(Path(sys.executable).with_name("dask"))]


@pytest.fixture(scope="module")
def _module_cluster() -> Iterator[None]:
    wb.stop()
    yield
    wb.stop()


def running_context(workers: int) -> wb.Context:
    """The live context if it has ``workers`` workers, else a fresh local one that has."""
    ctx = wb.current()
    if ctx is None or len(ctx.workers) != workers:
        wb.stop()
        ctx = wb.init(workers=workers)
    return ctx


@pytest.fixture
def context(_module_cluster) -> wb.Context:
    """A 2-worker local Workbench context, shared by consecutive tests of one module."""
    return running_context(2)


@pytest.fixture
def one_worker(_module_cluster) -> wb.Context:
    """A 1-worker local Workbench context, shared by consecutive tests of one module."""
    return running_context(1)


@pytest.fixture
def no_context(monkeypatch) -> Iterator[None]:
    """No live Workbench context and no WORKBENCH_CLUSTER, before and after the test."""
    monkeypatch.delenv("WORKBENCH_CLUSTER", raising=False)
    wb.stop()
    yield
    wb.stop()


@contextmanager
def command_line_cluster(folder: Path, *options: str, protocol: str = "tcp",
                         log: Path | None = None) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A scheduler and two workers started with the `dask` command line on 127.0.0.1 (``options``
    go to all three, e.g. TLS files); yields the scheduler address and the worker processes, and
    stops every process it started, by PID: workers first (a worker whose scheduler is gone
    retries it before exiting)."""
    scheduler_file = folder / "scheduler.json"
    output = log.open("w") if log is not None else subprocess.DEVNULL
    common = {"stdout": output, "stderr": subprocess.STDOUT}
    processes = [subprocess.Popen(
        DASK_CLI + ["scheduler", "--protocol", protocol, "--host", "127.0.0.1", "--port", "0",
                    "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file), *options],
        **common)]
    try:
        address = wait_for(lambda: scheduler_address_in(scheduler_file), "the scheduler to write its address")
        workers = [subprocess.Popen(
            DASK_CLI + ["worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1", "--nthreads", "1",
                        "--no-nanny", "--dashboard-address", "127.0.0.1:0", *options],
            **common) for _ in range(2)]
        processes += workers
        yield address, workers
    finally:
        for process in reversed(processes):
            stop_process(process)
        if log is not None:
            output.close()


@pytest.fixture
def cli_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A plain-TCP :func:`command_line_cluster`: the scheduler address and the worker processes."""
    with command_line_cluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory) -> Iterator[JupyterLab]:
    """A JupyterLab server on 127.0.0.1 (token, free port) serving an empty folder."""
    lab = JupyterLab(tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home"))
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def page(jupyter_lab):
    """A page of headless Debian Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = chromium(playwright)
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()


def scheduler_address_in(scheduler_file: Path) -> str | None:
    """The address a scheduler wrote into its ``--scheduler-file``; None until it has."""
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or half written
        return None


def wait_for(probe, what: str, timeout: float = 60.0):
    """Poll ``probe()`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A redis-server on a free port of 127.0.0.1, without persistence; stopped after the module."""
    import redis

    executable = shutil.which("redis-server")
    assert executable, "redis-server is not installed: `make test` installs Debian's redis-server"
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"redis-server exited with code {process.returncode}"
            try:
                with redis.Redis.from_url(url) as connection:
                    connection.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not answer within 20 s"
                time.sleep(0.05)
        yield url
    finally:
        stop_process(process, timeout=10)
