"""The dashboard's Stop button works in a real kernel while fit keeps the kernel busy.

The test is the notebook frontend: it starts an ipykernel, runs a cell that trains with
``progress="widget"``, finds the Stop button among the widgets the kernel opens, and sends the
click message a browser sends, while the cell still runs.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest
from jupyter_client.manager import start_new_kernel

EPOCHS = 200  # far more than run before the click is answered

TRAIN_CELL = f"""
import numpy as np, torch
import workbench as wb
wb.init(workers=1)
rng = np.random.default_rng(0)
x = rng.normal(size=(640, 4)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
est = wb.Estimator.from_torch(lambda: torch.nn.Linear(4, 2), optimizer="sgd", loss="cross_entropy")
est.fit((x, y), epochs={EPOCHS}, batch_size=32, progress="widget")
"""


@pytest.fixture
def kernel() -> Iterator:
    manager, client = start_new_kernel(kernel_name="python3")
    yield client
    client.execute("import workbench as wb; wb.stop()")
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def test_stop_button_click_ends_a_running_fit(kernel):
    request = kernel.execute(TRAIN_CELL)
    stop_button, progress = _await_widgets(kernel, request)
    _await_progress(kernel, request, progress)

    kernel.shell_channel.send(kernel.session.msg("comm_msg", {
        "comm_id": stop_button, "data": {"method": "custom", "content": {"event": "click"}}}))

    reply = _await_reply(kernel, request, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    epochs_run = _evaluate(kernel, "len(est.history_)")
    assert 1 <= int(epochs_run) < EPOCHS
    assert _evaluate(kernel, "est.predict(x).shape") == "(640, 2)"  # the model is usable after stopping


def _iopub(kernel, request: str, deadline: float) -> Iterator[dict]:
    """The iopub messages caused by ``request`` until ``deadline`` (fails the test after it)."""
    while time.monotonic() < deadline:
        try:
            message = kernel.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if message["parent_header"].get("msg_id") != request:
            continue
        if message["msg_type"] == "error":
            pytest.fail("\n".join(message["content"]["traceback"]))
        yield message
    pytest.fail("the kernel did not get there in time")


def _await_widgets(kernel, request: str) -> tuple[str, str]:
    """The comm ids of the dashboard's Stop button and progress bar, once both are open."""
    found: dict[str, str] = {}
    for message in _iopub(kernel, request, time.monotonic() + 120):
        if message["msg_type"] == "comm_open":
            state = message["content"]["data"].get("state", {})
            if state.get("_model_name") == "ButtonModel" and state.get("description") == "Stop":
                found["stop"] = message["content"]["comm_id"]
            if state.get("_model_name") == "IntProgressModel":
                found["progress"] = message["content"]["comm_id"]
        if len(found) == 2:
            return found["stop"], found["progress"]
    raise AssertionError("unreachable")


def _await_progress(kernel, request: str, progress: str) -> None:
    """Wait until the progress bar has moved: the fit is running."""
    for message in _iopub(kernel, request, time.monotonic() + 120):
        content = message["content"]
        if message["msg_type"] == "comm_msg" and content["comm_id"] == progress \
                and content["data"].get("state", {}).get("value", 0) > 0:
            return


def _await_reply(kernel, request: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = kernel.get_shell_msg(timeout=1)
        except queue.Empty:
            continue
        if reply["parent_header"].get("msg_id") == request:
            return reply
    pytest.fail(f"no execute_reply within {timeout} s: the click was not answered while busy")


def _evaluate(kernel, expression: str) -> str:
    """The repr of ``expression`` evaluated in the kernel."""
    request = kernel.execute("", user_expressions={"value": expression})
    reply = _await_reply(kernel, request, timeout=60)
    return reply["content"]["user_expressions"]["value"]["data"]["text/plain"]
