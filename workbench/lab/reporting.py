"""The kernel's side of the JupyterLab extension: report the Workbench context and the fits.

When ``workbench`` is imported in a Jupyter kernel started by a server running the Workbench
server extension (the server sets ``WORKBENCH_LAB_CHANNEL``), or a Workbench kernel starts
(it loads this module as an IPython extension), :func:`activate` opens this kernel's endpoint on the local channel (:mod:`workbench.lab.channel`) and has every fit keep a
:class:`~workbench.lab.jobs.JobRecord`. The server asks, the kernel answers from its live state:

- ``clusters``: the current context, described afresh (workers asked from the scheduler);
- ``jobs`` / ``job``: the fits of this kernel, running or finished;
- ``stop_job``, ``scale``, ``close_cluster``: act on them. These run on the channel's thread
  while the main thread may be busy training, as the dashboard's Stop button does.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
from typing import Any

from workbench.lab.channel import CHANNEL_ENV_VAR, ChannelError, KernelEndpoint
from workbench.lab.clusters import describe_cluster, requested_workers
from workbench.lab.jobs import JobBook

__all__ = ["activate", "load_ipython_extension"]

#: Seconds the scheduler has to list its workers before the kernel answers without them.
SCHEDULER_TIMEOUT = 3.0

_lock = threading.Lock()
_endpoint: KernelEndpoint | None = None
_book = JobBook()


def activate() -> bool:
    """Start reporting to the JupyterLab server, once; False outside such a server's kernels."""
    global _endpoint
    from workbench.jupyter import current_kernel, current_kernel_id
    from workbench.train.callbacks import add_fit_observer

    channel_dir = os.environ.get(CHANNEL_ENV_VAR)
    if not channel_dir or not os.path.isdir(channel_dir) or current_kernel() is None:
        return False
    with _lock:
        if _endpoint is None:
            _endpoint = KernelEndpoint(channel_dir, _handle, {"kernel_id": current_kernel_id()})
            atexit.register(_endpoint.close)  # a kernel shut down leaves no socket behind
            add_fit_observer(_book.new_record)
    return True


def _handle(request: dict[str, Any]) -> Any:
    """Answer one request from the server (see the module docstring)."""
    op = request["op"]
    if op == "clusters":
        context = _context()
        return [] if context is None else [_describe(context)]
    if op == "jobs":
        return [record.summary() for record in _book.all()]
    if op == "job":
        return _book.find(str(request.get("id"))).detail()
    if op == "stop_job":
        return _book.find(str(request.get("id"))).stop()
    if op == "scale":
        context = _context_with_id(request.get("id"))
        if not callable(getattr(context.cluster, "scale", None)):
            raise ChannelError(409, f"the {context.kind} cluster of this kernel cannot be scaled from here")
        context.cluster.scale(requested_workers(request))
        return _describe(context)
    if op == "close_cluster":
        _context_with_id(request.get("id")).close()
        return None
    raise ChannelError(400, f"unknown request {op!r}")


def _context():
    from workbench.context import current

    return current()


def _context_with_id(cluster_id: Any):
    context = _context()
    if context is None or _cluster_id(context) != cluster_id:
        raise ChannelError(404, f"no cluster {cluster_id!r}")
    return context


def _cluster_id(context) -> str:
    """An id that names this kernel's context (a new context after ``wb.stop()`` gets a new one)."""
    digest = hashlib.sha1(f"{os.getpid()} {id(context)} {context.scheduler_address}".encode()).hexdigest()
    return f"kernel-{digest[:12]}"


def _describe(context) -> dict[str, Any]:
    from workbench.context import scheduler_workers

    return describe_cluster(
        _cluster_id(context), owner="kernel", kind=context.kind,
        scheduler=context.scheduler_address, dashboard=context.dashboard_link,
        workers=scheduler_workers(context.client, timeout=SCHEDULER_TIMEOUT),
        can_scale=callable(getattr(context.cluster, "scale", None)),
    )


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench.lab.reporting``; the Workbench kernels load it at start-up."""
    activate()
