"""The local channel: kernel endpoints on Unix sockets, asked by the server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from workbench.lab.channel import ChannelError, KernelEndpoint, ask, create_channel_dir, endpoints


@pytest.fixture
def runtime_dir():
    """A runtime dir short enough for socket paths (pytest's tmp_path can be too long for them)."""
    folder = Path(tempfile.mkdtemp(prefix="wb-runtime-"))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def channel_dir(runtime_dir) -> Path:
    return create_channel_dir(runtime_dir)


def handle(request: dict) -> object:
    if request["op"] == "echo":
        return {"echo": request.get("value")}
    if request["op"] == "refuse":
        raise ChannelError(409, "not now")
    raise KeyError("something broke")


@pytest.fixture
def endpoint(channel_dir):
    started = KernelEndpoint(channel_dir, handle, {"kernel_id": "k-1"})
    yield started
    started.close()


def test_the_channel_folder_is_private_and_inside_the_runtime_dir(runtime_dir, channel_dir):
    assert channel_dir.parent == runtime_dir
    assert stat.S_IMODE(channel_dir.stat().st_mode) == 0o700


def test_a_runtime_dir_too_long_for_socket_paths_falls_back_to_the_temp_dir(tmp_path):
    deep = tmp_path / ("d" * 100)
    channel_dir = create_channel_dir(deep)
    try:
        assert deep not in channel_dir.parents and len(str(channel_dir / "4194304.sock")) < 108
        assert stat.S_IMODE(channel_dir.stat().st_mode) == 0o700
    finally:
        channel_dir.rmdir()


def test_an_answer_carries_the_result_and_the_kernels_identity(endpoint):
    answer = asyncio.run(ask(endpoint.path, {"op": "echo", "value": [1, 2]}))
    assert answer == {"ok": True, "result": {"echo": [1, 2]}, "kernel": {"kernel_id": "k-1"}}


@pytest.mark.parametrize(("request_", "status", "words"), [
    ({"op": "refuse"}, 409, "not now"),
    ({"op": "crash"}, 500, "KeyError: 'something broke'"),
    ({"no": "op"}, 400, "'op' string"),
    ([1, 2], 400, "'op' string"),
])
def test_refusals_and_errors_come_back_as_statuses(endpoint, request_, status, words):
    answer = asyncio.run(ask(endpoint.path, request_))
    assert answer["ok"] is False and answer["status"] == status and words in answer["message"]


def test_a_line_that_is_not_json_is_a_400(endpoint):
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(endpoint.path))
        client.sendall(b"{not json\n")
        answer = client.makefile().readline()
    assert '"status": 400' in answer and "not JSON" in answer


def test_the_endpoint_keeps_answering_after_an_error(endpoint):
    asyncio.run(ask(endpoint.path, {"op": "crash"}))
    assert asyncio.run(ask(endpoint.path, {"op": "echo", "value": 3}))["result"] == {"echo": 3}


def test_a_dead_kernels_socket_is_removed_when_asked(channel_dir):
    stale = channel_dir / "99999.sock"
    with socket.socket(socket.AF_UNIX) as listener:  # bound, then gone: what a killed kernel leaves
        listener.bind(str(stale))
    assert endpoints(channel_dir) == [stale]
    assert asyncio.run(ask(stale, {"op": "echo"})) is None
    assert not stale.exists() and endpoints(channel_dir) == []


def test_close_removes_the_socket(channel_dir):
    endpoint = KernelEndpoint(channel_dir, handle, {})
    assert endpoints(channel_dir) == [endpoint.path]
    endpoint.close()
    assert endpoints(channel_dir) == []
