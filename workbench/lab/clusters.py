"""Clusters as the JupyterLab extension shows them, and the clusters the server itself starts.

:func:`describe_cluster` makes the one JSON shape the cluster panel draws, for a kernel's
Workbench context (:mod:`workbench.lab.reporting`) and for the local clusters started from the
sidebar's "New local cluster" (:class:`ServerClusters`). Those run in the Jupyter server's
process, outlive the notebooks, and are joined from a notebook with
``wb.init(cluster="tcp://...")`` (the ``connect`` field).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from workbench.context import local_cluster, tasks_in_flight
from workbench.lab.channel import ChannelError

__all__ = ["ServerClusters", "describe_cluster", "requested_workers"]


def describe_cluster(
    cluster_id: str,
    *,
    owner: str,
    kind: str,
    scheduler: str,
    dashboard: str | None,
    workers: dict[str, dict[str, Any]],
    can_scale: bool,
) -> dict[str, Any]:
    """The cluster panel's record of a cluster; ``workers`` as the scheduler's identity lists them."""
    return {
        "id": cluster_id, "owner": owner, "kind": kind, "kernel_id": None, "notebook": None,
        "scheduler": scheduler, "dashboard": dashboard,
        "workers": [
            {
                "name": str(info.get("name", address)), "address": address,
                "cores": int(info.get("nthreads", 0)), "memory": int(info.get("memory_limit") or 0),
                "memory_used": int(info.get("metrics", {}).get("memory", 0)),
                "cpu": float(info.get("metrics", {}).get("cpu", 0.0)),
                "tasks": tasks_in_flight(info), "status": str(info.get("status", "running")),
            }
            for address, info in sorted(workers.items(), key=_by_name)
        ],
        "can_scale": can_scale, "can_stop": True,
        "connect": f'wb.init(cluster="{scheduler}")',
    }


def _by_name(item: tuple[str, dict[str, Any]]) -> tuple[int, int | str]:
    """Sort key of a worker: numeric names (a LocalCluster's 0, 1, ..., 10) in numeric order."""
    name = str(item[1].get("name", item[0]))
    return (0, int(name)) if name.isdigit() else (1, name)


def requested_workers(body: dict[str, Any], default: int | None = None) -> int:
    """The ``workers`` count of a request body: an integer >= 1 (a 400 ChannelError otherwise)."""
    workers = body.get("workers", default)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ChannelError(400, f"'workers' must be an integer >= 1, got {workers!r}")
    return workers


class ServerClusters:
    """Local clusters owned by the Jupyter server, by id (``server-1``, ``server-2``, ...).

    A ``LocalCluster`` is synchronous (it runs its own event loop thread), so every call on one
    runs in a worker thread and the server's loop never waits on it.
    """

    def __init__(self):
        self.clusters: dict[str, Any] = {}
        self._ids = (f"server-{n}" for n in itertools.count(1))

    async def start(self, workers: int) -> dict[str, Any]:
        """Start a local cluster of ``workers`` worker processes; its record."""
        cluster = await asyncio.to_thread(local_cluster, workers)
        cluster_id = next(self._ids)
        self.clusters[cluster_id] = cluster
        return await self.describe(cluster_id)

    async def describe(self, cluster_id: str) -> dict[str, Any]:
        cluster = self._get(cluster_id)
        identity = await asyncio.to_thread(cluster.sync, cluster.scheduler_comm.identity, n_workers=-1)
        return describe_cluster(cluster_id, owner="server", kind="local", scheduler=cluster.scheduler_address,
                                dashboard=cluster.dashboard_link, workers=identity["workers"], can_scale=True)

    async def describe_all(self) -> list[dict[str, Any]]:
        return [await self.describe(cluster_id) for cluster_id in list(self.clusters)]

    async def scale(self, cluster_id: str, workers: int) -> dict[str, Any]:
        await asyncio.to_thread(self._get(cluster_id).scale, workers)
        return await self.describe(cluster_id)

    async def close(self, cluster_id: str) -> None:
        cluster = self.clusters.pop(cluster_id, None)
        if cluster is None:
            raise ChannelError(404, f"no cluster {cluster_id!r}")
        await asyncio.to_thread(cluster.close)

    async def close_all(self) -> None:
        for cluster_id in list(self.clusters):
            await self.close(cluster_id)

    def __contains__(self, cluster_id: str) -> bool:
        return cluster_id in self.clusters

    def _get(self, cluster_id: str) -> Any:
        try:
            return self.clusters[cluster_id]
        except KeyError:
            raise ChannelError(404, f"no cluster {cluster_id!r}") from None
