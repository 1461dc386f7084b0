"""The server's side of the local channel: ask every kernel, gather the answers.

The kernels are whoever listens in the channel folder (:mod:`workbench.lab.channel`); they are
asked concurrently, each answer is labelled with its kernel's id and notebook path, and a kernel
that died is dropped. Requests about one cluster or job go to every kernel: the one that has
it answers, the others say 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from workbench.lab.channel import ChannelError, ask, endpoints

__all__ = ["KernelHub"]


class KernelHub:
    """The kernels of one JupyterLab server, reached through its channel folder.

    Args:
        channel_dir: the folder the kernels listen in.
        notebooks: returns {kernel id: notebook path} for the server's sessions now.
    """

    def __init__(self, channel_dir: Path, notebooks: Callable[[], Awaitable[dict[str, str]]]):
        self.channel_dir = channel_dir
        self.notebooks = notebooks

    async def gather(self, op: str) -> list[dict[str, Any]]:
        """Every kernel's records for ``op`` ("clusters" or "jobs"), in one list."""
        answers = await self._ask_all({"op": op})
        records = []
        for answer in answers:
            if answer["ok"]:
                records.extend(answer["result"])
        return records

    async def command(self, op: str, record_id: str, **arguments: Any) -> Any:
        """Send ``op`` about the cluster or job ``record_id`` to the kernel that has it; its result.

        Raises:
            ChannelError: 404 when no kernel has it, else the owning kernel's refusal.
        """
        answers = await self._ask_all({"op": op, "id": record_id, **arguments})
        for answer in answers:
            if answer["ok"]:
                return answer["result"]
        for answer in answers:
            if answer["status"] != 404:
                raise ChannelError(answer["status"], answer["message"])
        kind = "job" if "job" in op else "cluster"
        raise ChannelError(404, f"no {kind} {record_id!r}")

    async def _ask_all(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The answers of the kernels that answered, their records labelled with kernel and notebook."""
        replies = await asyncio.gather(*(ask(path, request) for path in endpoints(self.channel_dir)))
        notebooks = await self.notebooks()
        answers = [reply for reply in replies if reply is not None]
        for answer in answers:
            kernel_id = answer.get("kernel", {}).get("kernel_id")
            label = {"kernel_id": kernel_id, "notebook": notebooks.get(kernel_id)}
            result = answer.get("result")
            for record in result if isinstance(result, list) else [result]:
                if isinstance(record, dict):
                    record.update(label)
        return answers
