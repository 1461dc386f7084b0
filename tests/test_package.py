"""Packaging promises: a cheap import, and `make lab` serving JupyterLab with the Workbench
extension and kernels."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_loads_no_heavy_framework():
    code = (
        "import sys, workbench as wb; "
        "print([m for m in ('torch', 'tensorflow', 'keras', 'distributed', 'pandas') if m in sys.modules])"
    )
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"


def test_feature_package_loads_each_set_on_first_use():
    code = "import sys, workbench.feature; print([m for m in ('PIL', 'torch', 'tensorflow') if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"


def test_make_lab_serves_jupyterlab_and_prints_its_url(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_PORT={port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = _wait_for_url(lab, port, timeout=120)
        token = re.search(r"token=(\w+)", url).group(1)
        status = _get_when_listening(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=30)
        assert "started" in json.loads(status)
        with urllib.request.urlopen(url, timeout=30) as reply:
            page = reply.read()
            assert reply.status == 200 and b"JupyterLab" in page
        assert b'"name": "analytics-workbench"' in page  # the Workbench sidebar is among the page's extensions
        kernelspecs = json.loads(_get_when_listening(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}", 30))
        assert {"workbench-local", "workbench-cluster"} <= set(kernelspecs["kernelspecs"])
        jobs = json.loads(_get_when_listening(f"http://127.0.0.1:{port}/workbench/api/jobs?token={token}", 30))
        assert jobs == {"jobs": []}  # the server extension answers
    finally:
        os.killpg(lab.pid, signal.SIGTERM)  # the session make started: make and jupyter lab
        lab.wait(timeout=30)


def _get_when_listening(url: str, timeout: float) -> bytes:
    """GET a URL, retrying while the server has printed its address but not yet bound it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return reply.read()
        except ConnectionRefusedError:
            pass
        except urllib.error.URLError as error:
            if not isinstance(error.reason, ConnectionRefusedError):
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens at {url}")
        time.sleep(0.2)


def _wait_for_url(process: subprocess.Popen, port: int, timeout: float) -> str:
    pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=\w+")
    output, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make lab exited with {process.returncode}:\n{output}")
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            output += os.read(process.stdout.fileno(), 65536).decode(errors="replace")
            match = pattern.search(output)
            if match:
                return match.group(0)
    raise AssertionError(f"make lab printed no URL within {timeout} s:\n{output}")
