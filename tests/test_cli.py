"""`workbench lab` starts a real JupyterLab on the folder it is given; usage errors exit with status 2."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

from workbench.cli import _lab_root

from .browser import free_port

WORKBENCH = [sys.executable, "-m", "workbench.cli"]


def get(url: str, token: str | None = None) -> tuple[int, object]:
    """GET ``url`` (with the token, when given); the status and the decoded JSON."""
    headers = {"Authorization": f"token {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return response.status, json.load(response)


def test_lab_serves_the_directory_it_is_given(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "analysis.ipynb").write_text("{}")
    (root / "data").mkdir()
    port, token = free_port(), secrets.token_hex(16)
    env = {"JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    command = WORKBENCH + ["lab", str(root), "--port", str(port), "--no-browser", "--",
                           f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
                           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with (tmp_path / "lab.log").open("w") as log:
        lab = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, **env},
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        status = wait_for_status(lab, f"{url}/api/status", token, log=tmp_path / "lab.log")
        assert status == 200
        _, listing = get(f"{url}/api/contents", token)
        assert sorted((item["name"], item["type"]) for item in listing["content"]) == [
            ("analysis.ipynb", "notebook"), ("data", "directory")]
    finally:
        lab.terminate()  # the PID is JupyterLab's own: `workbench lab` execs it
        lab.wait(timeout=30)


def wait_for_status(lab: subprocess.Popen, url: str, token: str, log, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert lab.poll() is None, f"workbench lab exited with {lab.returncode}:\n{log.read_text()}"
        try:
            return get(url, token)[0]
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise TimeoutError(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()}")


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(WORKBENCH + list(args), capture_output=True, text=True, timeout=60, cwd=cwd)


def test_usage_errors_exit_with_status_2_and_no_traceback(tmp_path):
    for args, message in [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["lab", str(tmp_path / "missing")], f"no such directory: {tmp_path / 'missing'}"),
        (["lab", __file__], f"{__file__} is not a directory"),
        (["config", "list", "--", "--x"], "arguments after -- are only for `workbench lab`"),
    ]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_lab_serves_tutorials_by_default_else_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _lab_root(None) == tmp_path
    (tmp_path / "tutorials").mkdir()
    assert _lab_root(None) == tmp_path / "tutorials"
