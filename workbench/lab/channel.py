"""The local channel between a JupyterLab server and its kernels: Unix sockets in a private folder.

The server extension makes a folder only its user can enter (mode 0700, in the Jupyter runtime
directory) and names it in the environment variable ``WORKBENCH_LAB_CHANNEL``, which every kernel
the server starts inherits. A kernel that uses Workbench listens on ``<folder>/<pid>.sock``
(:class:`KernelEndpoint`); the server finds the kernels by listing the folder and asks each one
(:func:`ask`). One connection carries one request and one answer, each a line of JSON:

    request  {"op": "jobs", ...arguments}
    answer   {"ok": true, "result": ..., "kernel": {...}}
             or {"ok": false, "status": 404, "message": "...", "kernel": {...}}

where ``kernel`` is what the kernel says of itself (its Jupyter kernel id).

No TCP port is opened, so nothing is exposed to the network, and the folder's permissions keep
other users out. A kernel that died leaves its socket behind; :func:`ask` removes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socketserver
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CHANNEL_ENV_VAR", "ChannelError", "KernelEndpoint", "ask", "create_channel_dir", "endpoints"]

CHANNEL_ENV_VAR = "WORKBENCH_LAB_CHANNEL"

#: Unix socket paths are limited to 107 bytes on Linux; "<pid>.sock" needs about 12 of them.
_MAX_DIR_LENGTH = 90
_MAX_MESSAGE = 16 * 2**20


class ChannelError(Exception):
    """A request the kernel refuses: carried back to the server as an HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def create_channel_dir(runtime_dir: str | os.PathLike) -> Path:
    """A new private folder for one server's kernel sockets (in ``runtime_dir`` when it is short)."""
    parent = Path(runtime_dir)
    parent.mkdir(parents=True, exist_ok=True)
    if len(str(parent)) > _MAX_DIR_LENGTH - 20:  # the socket path would not fit: use the temp dir
        parent = Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="workbench-lab-", dir=parent))  # mode 0700


def endpoints(channel_dir: str | os.PathLike) -> list[Path]:
    """The kernel sockets in a channel folder, oldest kernel first."""
    return sorted(Path(channel_dir).glob("*.sock"), key=lambda path: int(path.stem))


class KernelEndpoint:
    """The kernel's end: answers requests with ``handle(request) -> result`` on a daemon thread.

    ``handle`` raises :class:`ChannelError` to refuse a request; any other error is answered as
    a 500 naming it (the kernel keeps running). ``identity`` goes with every answer.
    """

    def __init__(self, channel_dir: str | os.PathLike, handle: Callable[[dict[str, Any]], Any],
                 identity: dict[str, Any]):
        self.path = Path(channel_dir) / f"{os.getpid()}.sock"
        self.handle = handle
        self.identity = identity
        endpoint = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(json.dumps(endpoint.answer(self.rfile.readline(_MAX_MESSAGE))).encode() + b"\n")

        self.server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="workbench-lab-channel", daemon=True)
        self.thread.start()

    def answer(self, line: bytes) -> dict[str, Any]:
        """The answer to one request line."""
        return {**self._outcome(line), "kernel": self.identity}

    def _outcome(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ChannelError(400, "a request is a JSON object with an 'op' string")
            return {"ok": True, "result": self.handle(request)}
        except ChannelError as error:
            return {"ok": False, "status": error.status, "message": error.message}
        except json.JSONDecodeError as error:
            return {"ok": False, "status": 400, "message": f"the request is not JSON: {error}"}
        except Exception as error:  # noqa: BLE001 - reported to the server, the kernel goes on
            return {"ok": False, "status": 500, "message": f"{type(error).__name__}: {error}"}

    def close(self) -> None:
        """Stop answering and remove the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


async def ask(socket_path: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """Send ``request`` to the kernel listening on ``socket_path``; its answer, or None when no
    kernel is there any more (the stale socket is removed) or it did not answer within ``timeout``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket_path), limit=_MAX_MESSAGE),
                                                timeout)
    except (ConnectionRefusedError, FileNotFoundError):
        socket_path.unlink(missing_ok=True)  # its kernel is gone
        return None
    except (TimeoutError, OSError):
        return None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return json.loads(line) if line else None
    except (TimeoutError, OSError, json.JSONDecodeError):
        return None
    finally:
        writer.close()
