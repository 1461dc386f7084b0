"""The cluster widget: a live view of a Workbench context's Dask cluster in the notebook.

Shows the workers with their cores, memory and tasks in flight, links to the Dask dashboard,
and offers scale up/down buttons when the cluster can be scaled (a cluster Workbench or the
user started, e.g. a ``LocalCluster``; a context connected to a bare scheduler address has
none). The scheduler is asked afresh on every refresh (:func:`workbench.context.scheduler_workers`).
While displayed, a background thread refreshes the view every ``period`` seconds until
:meth:`ClusterWidget.stop` (or :meth:`close`).
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from dask.utils import format_bytes

from workbench.context import Context, scheduler_workers, tasks_in_flight
from workbench.widgets.notebook import answer_while_busy
from workbench.widgets.html import save_html

__all__ = ["ClusterWidget"]

class ClusterWidget(widgets.VBox):
    """Workers, cores, memory, tasks in flight, dashboard link and scale buttons of a context.

    Args:
        context: the Workbench context to show.
        period: seconds between refreshes while displayed.

    Attributes:
        summary: the HTML line with totals and the dashboard link.
        table: the HTML table of workers.
        scale_up, scale_down: the scale buttons, or None when the cluster cannot be scaled.
    """

    def __init__(self, context: Context, period: float = 2.0):
        self._stopped = threading.Event()  # first: close() (also run by __del__) needs it
        self._thread: threading.Thread | None = None
        if not isinstance(context, Context):
            raise TypeError(f"ClusterWidget needs a workbench Context, got {type(context).__name__}")
        if not isinstance(period, (int, float)) or period <= 0:
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        self.context = context
        self.period = float(period)
        self.summary = widgets.HTML()
        self.table = widgets.HTML()
        self.scale_up = self.scale_down = None
        children: list[widgets.Widget] = [self.summary, self.table]
        if callable(getattr(context.cluster, "scale", None)):
            self.scale_up = widgets.Button(description="Scale up", icon="plus", tooltip="Add a worker")
            self.scale_down = widgets.Button(description="Scale down", icon="minus", tooltip="Remove a worker")
            self.scale_up.on_click(lambda _: self._scale(+1))
            self.scale_down.on_click(lambda _: self._scale(-1))
            children.append(widgets.HBox([self.scale_up, self.scale_down]))
        super().__init__(children)
        self.refresh()

    def refresh(self) -> None:
        """Ask the scheduler for its workers now and redraw."""
        if self.context.closed:
            self.summary.value = "<b>Workbench cluster</b>: the context is closed"
            self.table.value = ""
            self.stop()
            return
        workers = sorted(scheduler_workers(self.context.client).items())
        rows = [(str(w.get("name", address)), address, int(w.get("nthreads", 0)),
                 int(w.get("memory_limit") or 0), tasks_in_flight(w)) for address, w in workers]
        link = self.context.dashboard_link
        dashboard = f'<a href="{html.escape(link)}" target="_blank">Dask dashboard</a>' if link else "no dashboard"
        self.summary.value = (
            f"<b>Workbench cluster</b> ({html.escape(self.context.kind)}): {len(rows)} workers, "
            f"{sum(r[2] for r in rows)} cores, {format_bytes(sum(r[3] for r in rows))}, "
            f"{sum(r[4] for r in rows)} tasks in flight &mdash; {dashboard}"
        )
        self.table.value = (
            "<table><tr><th>Worker</th><th>Address</th><th>Cores</th><th>Memory</th><th>Tasks</th></tr>"
            + "".join(f"<tr><td>{html.escape(name)}</td><td><code>{html.escape(address)}</code></td><td>{cores}</td>"
                      f"<td>{format_bytes(memory) if memory else '-'}</td><td>{tasks}</td></tr>"
                      for name, address, cores, memory, tasks in rows)
            + "</table>"
        )
        if self.scale_down is not None:
            self.scale_down.disabled = len(rows) <= 1
            for button in (self.scale_up, self.scale_down):
                answer_while_busy(button)  # scaling works while a fit keeps the kernel busy

    def start(self) -> None:
        """Refresh every ``period`` seconds in a background thread (until :meth:`stop`)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._refresh_loop, name="workbench-cluster-widget", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the periodic refresh (the view keeps its last state)."""
        self._stopped.set()

    def close(self) -> None:
        """Stop refreshing and close the widget."""
        self.stop()
        super().close()

    def save(self, path: str | Path) -> Path:
        """Write the current view to ``path`` as one standalone HTML file."""
        self.refresh()
        return save_html(path, [self.summary, self.table], title="Workbench cluster")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.start()  # displayed: keep it live
        return super()._repr_mimebundle_(**kwargs)

    def _scale(self, change: int) -> None:
        workers = len(scheduler_workers(self.context.client))
        self.context.cluster.scale(max(1, workers + change))
        self.refresh()

    def _refresh_loop(self) -> None:
        while not self._stopped.wait(self.period):
            try:
                self.refresh()
            except Exception as error:  # a refresh must not die silently: say so in the view
                self.summary.value = f"<b>Workbench cluster</b>: refresh failed: {html.escape(repr(error))}"
                self.stop()

