"""A real JupyterLab server on 127.0.0.1 and a headless Chromium page driving it.

Shared by the browser tests: :class:`JupyterLab` starts ``jupyter lab`` as a subprocess (free
port, a token, config/runtime/settings directories of its own under a temporary folder) and
stops it by its PID; :func:`chromium` launches Debian's ``/usr/bin/chromium`` through
Playwright (never ``playwright install``). Screenshots go to ``test-artifacts/`` at the
repository root.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .processes import stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """``jupyter lab`` serving ``root`` on 127.0.0.1 with a token, until :meth:`stop`."""

    def __init__(self, root: Path, home: Path, env: dict[str, str] | None = None):
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            str(Path(sys.executable).with_name("jupyter-lab")), "--no-browser", "--ip=127.0.0.1",
            f"--port={self.port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}",
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",  # offline
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        no_news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        no_news.parent.mkdir(parents=True, exist_ok=True)
        no_news.write_text('{"fetchNews": "false"}')  # no "get notified about news?" toast over the page
        self.runtime_dir = home / "runtime"
        self.log = (home / "jupyter-lab.log").open("w")
        environment = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"),
                       "JUPYTER_RUNTIME_DIR": str(self.runtime_dir), **(env or {})}
        self.process = subprocess.Popen(command, cwd=root, env=environment, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self._await_ready(timeout=60)

    def _await_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}; see {self.log.name}")
            try:
                self.api("status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(f"jupyter lab not ready within {timeout} s; see {self.log.name}")

    def api(self, path: str) -> Any:
        """GET ``/api/<path>`` with the token; the decoded JSON."""
        status, body = self.request("GET", f"/api/{path}")
        if status != 200:
            raise ConnectionError(f"GET /api/{path} answered {status}: {body}")
        return body

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                token: bool = True, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, Any]:
        """``method path`` with a JSON ``body`` (with the token unless ``token=False``); the
        status and the decoded JSON answer (None when empty), error statuses included."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            headers["Authorization"] = f"token {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with (opener or urllib.request.build_opener()).open(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else None

    def lab_url(self, path: str = "") -> str:
        """The address that opens ``path`` (a notebook under root) in a fresh workspace."""
        tree = f"/tree/{path}" if path else ""
        return f"{self.url}/lab{tree}?reset&token={self.token}"

    def stop(self) -> None:
        """Stop the server (it shuts its kernels down) and wait for it."""
        stop_process(self.process, timeout=30)
        self.log.close()


def write_notebook(path: Path, cells: list[str], kernel: tuple[str, str] = ("python3", "Python 3")) -> Path:
    """A notebook of code ``cells`` for the kernelspec ``kernel`` (name, display name)."""
    name, display_name = kernel
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": name, "display_name": display_name, "language": "python"}},
        "cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "execution_count": None,
                   "outputs": [], "source": source} for i, source in enumerate(cells)],
    }
    path.write_text(json.dumps(notebook))
    return path


def chromium(playwright):
    """Debian's Chromium, headless, through Playwright."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)


def open_notebook(page, lab: JupyterLab, path: str, timeout_s: float = 120) -> None:
    """Open the notebook ``path`` in JupyterLab and wait until its kernel is connected."""
    page.goto(lab.lab_url(path))
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.connectionStatus"
        " === 'connected'", timeout=timeout_s * 1000)


def run_all_cells(page) -> None:
    """Start running every cell of the open notebook, as the Run menu's "Run All Cells" does
    (without waiting for them: the command's promise ends with the last cell)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def bokeh_sources(page) -> list[dict[str, int]]:
    """Each Bokeh data source drawn on the page: its column names -> number of rows."""
    return page.evaluate("""() => (window.Bokeh?.documents ?? []).flatMap(doc =>
        [...doc._all_models.values()].filter(model => model.type === "ColumnDataSource").map(source =>
            Object.fromEntries(Object.entries(source.data).map(([column, values]) => [column, values.length]))))""")


def screenshot(target, name: str) -> Path:
    """Save a page or one element (a locator) as ``test-artifacts/<name>.png``; returns the path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path))
    return path
