"""The REST API of the Workbench server extension, under ``/workbench/api/``.

Every handler is a jupyter_server ``APIHandler`` whose methods are ``@tornado.web.authenticated``:
a request needs the server's token (or its login cookie, and then the XSRF token on POST, PATCH
and DELETE). Errors are JSON ``{"message": ..., "reason": ...}`` with the HTTP status.

==========================================  ====================================================
``GET    /workbench/api/clusters``           ``{"clusters": [...]}``: kernels' contexts and the
                                             server's own local clusters
``POST   /workbench/api/clusters``           ``{"workers": n}`` (default 2): start a local cluster
                                             owned by the server; 201 and its record
``PATCH  /workbench/api/clusters/<id>``      ``{"workers": n}``: scale; the record
``DELETE /workbench/api/clusters/<id>``      close it (a kernel's context: ``wb.stop()``); 204
``GET    /workbench/api/jobs``               ``{"jobs": [...]}``: every fit in the server's kernels
``GET    /workbench/api/jobs/<id>``          one job with its step and epoch series
``POST   /workbench/api/jobs/<id>/stop``     end a running fit at its next check; 202
==========================================  ====================================================

Records are made by :func:`workbench.lab.clusters.describe_cluster` and
:class:`workbench.lab.jobs.JobRecord`. Unknown ids are 404; acting on something that cannot
(a cluster that cannot be scaled, a job that is not running) is 409; a bad body is 400.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from workbench.lab.channel import ChannelError
from workbench.lab.clusters import ServerClusters, requested_workers
from workbench.lab.hub import KernelHub

__all__ = ["routes"]

_ID = r"([\w\-]+)"


def _answers(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Authenticate the request, and turn a :class:`ChannelError` into its HTTP error."""

    @tornado.web.authenticated
    @functools.wraps(method)
    async def wrapper(self, *args: Any) -> None:
        try:
            await method(self, *args)
        except ChannelError as error:
            raise tornado.web.HTTPError(error.status, error.message) from None

    return wrapper


class _Handler(APIHandler):
    def initialize(self, hub: KernelHub, server_clusters: ServerClusters) -> None:
        self.hub = hub
        self.server_clusters = server_clusters

    def body(self) -> dict[str, Any]:
        """The request's JSON object (an empty body is ``{}``)."""
        body = self.get_json_body() if self.request.body else {}
        if not isinstance(body, dict):
            raise ChannelError(400, "the request body must be a JSON object")
        return body


class ClustersHandler(_Handler):
    @_answers
    async def get(self) -> None:
        clusters = await self.server_clusters.describe_all() + await self.hub.gather("clusters")
        self.finish({"clusters": clusters})

    @_answers
    async def post(self) -> None:
        record = await self.server_clusters.start(requested_workers(self.body(), default=2))
        self.set_status(201)
        self.finish(record)


class ClusterHandler(_Handler):
    @_answers
    async def patch(self, cluster_id: str) -> None:
        workers = requested_workers(self.body())
        if cluster_id in self.server_clusters:
            record = await self.server_clusters.scale(cluster_id, workers)
        else:
            record = await self.hub.command("scale", cluster_id, workers=workers)
        self.finish(record)

    @_answers
    async def delete(self, cluster_id: str) -> None:
        if cluster_id in self.server_clusters:
            await self.server_clusters.close(cluster_id)
        else:
            await self.hub.command("close_cluster", cluster_id)
        self.set_status(204)
        self.finish()


class JobsHandler(_Handler):
    @_answers
    async def get(self) -> None:
        jobs = await self.hub.gather("jobs")
        self.finish({"jobs": sorted(jobs, key=lambda job: job["started"], reverse=True)})


class JobHandler(_Handler):
    @_answers
    async def get(self, job_id: str) -> None:
        self.finish(await self.hub.command("job", job_id))


class JobStopHandler(_Handler):
    @_answers
    async def post(self, job_id: str) -> None:
        record = await self.hub.command("stop_job", job_id)
        self.set_status(202)
        self.finish(record)


def routes(hub: KernelHub, server_clusters: ServerClusters) -> list[tuple[str, type, dict[str, Any]]]:
    """The URL patterns (below the server's base URL) and their handlers."""
    shared = {"hub": hub, "server_clusters": server_clusters}
    return [
        (r"/workbench/api/clusters", ClustersHandler, shared),
        (rf"/workbench/api/clusters/{_ID}", ClusterHandler, shared),
        (r"/workbench/api/jobs", JobsHandler, shared),
        (rf"/workbench/api/jobs/{_ID}", JobHandler, shared),
        (rf"/workbench/api/jobs/{_ID}/stop", JobStopHandler, shared),
    ]
