"""A real JupyterLab server with the Workbench extension, and kernels it starts for a notebook.

The kernels are started through the server's REST API (so they inherit the server's channel to
report on) and driven with jupyter_client over their connection files, as a frontend would.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest
from jupyter_client import BlockingKernelClient

from ..browser import JupyterLab


class LabKernel:
    """A kernel the server started for the notebook ``path``; runs code like a notebook cell."""

    def __init__(self, lab: JupyterLab, path: str):
        self.lab = lab
        status, session = lab.request("POST", "/api/sessions", {"path": path, "type": "notebook", "name": path,
                                                                 "kernel": {"name": "python3"}})
        assert status == 201, session
        self.id = session["kernel"]["id"]
        self.client = BlockingKernelClient(connection_file=str(lab.runtime_dir / f"kernel-{self.id}.json"))
        self.client.load_connection_file()
        self.client.start_channels(hb=False)  # no heartbeat: it reads a kernel still starting as dead
        self.client.wait_for_ready(timeout=120)

    def start(self, code: str) -> str:
        """Start running ``code``; the request's id (see :meth:`wait`)."""
        return self.client.execute(code)

    def wait(self, request: str, timeout: float = 180, expect_error: bool = False) -> str:
        """The printed output of ``request`` once it finished; fails the test on an error (or,
        with ``expect_error``, returns the error's message and fails without one)."""
        output = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != request:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                output.append(content["text"])
            elif kind == "error":
                if expect_error:
                    return f"{content['ename']}: {content['evalue']}"
                pytest.fail("the cell raised:\n" + "\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                if expect_error:
                    pytest.fail("the cell was expected to raise, and did not")
                return "".join(output)
        pytest.fail(f"the cell did not finish within {timeout} s")

    def run(self, code: str, timeout: float = 180) -> str:
        """Run ``code`` to the end; its printed output."""
        return self.wait(self.start(code), timeout)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.lab.request("DELETE", f"/api/kernels/{self.id}")


@pytest.fixture(scope="module")
def lab(jupyter_lab) -> JupyterLab:
    """The module's JupyterLab server, with the Workbench extension (installed with the package)."""
    return jupyter_lab


@pytest.fixture(scope="module")
def kernel(lab) -> Iterator[LabKernel]:
    """A kernel of ``lab`` for the notebook ``report.ipynb``, with a 2-worker Workbench context."""
    started = LabKernel(lab, "report.ipynb")
    started.run("import workbench as wb\nctx = wb.init(workers=2)")
    yield started
    started.run("wb.stop()")
    started.shutdown()


def poll(read, until, timeout: float = 60, every: float = 0.2):
    """Call ``read()`` until ``until(value)`` holds; the value (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if until(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"still {value!r} after {timeout} s")
        time.sleep(every)
