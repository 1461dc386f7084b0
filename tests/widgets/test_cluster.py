"""The cluster widget on real clusters: what it shows, its scale buttons, refresh and HTML."""

from __future__ import annotations

import time

import pytest
from dask.utils import format_bytes

import workbench as wb
from workbench.context import scheduler_workers
from workbench.widgets.cluster import ClusterWidget


def _wait_for_workers(ctx: wb.Context, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(scheduler_workers(ctx.client)) != count:
        assert time.monotonic() < deadline, f"the cluster did not reach {count} workers"
        time.sleep(0.2)


def test_shows_workers_and_scales(context, tmp_path):
    widget = ClusterWidget(context)
    workers = context.workers
    assert "2 workers" in widget.summary.value and "Dask dashboard" in widget.summary.value
    for worker in workers:
        assert worker.address in widget.table.value
        assert f"<td>{worker.cores}</td><td>{format_bytes(worker.memory)}</td>" in widget.table.value
    try:
        widget.scale_up.click()
        _wait_for_workers(context, 3)
        widget.refresh()
        assert "3 workers" in widget.summary.value
        widget.scale_down.click()
        _wait_for_workers(context, 2)
        widget.refresh()
        assert "2 workers" in widget.summary.value
    finally:
        context.cluster.scale(2)
        _wait_for_workers(context, 2)
    page = widget.save(tmp_path / "cluster.html").read_text()
    assert workers[0].address in page
    widget.close()


def test_background_refresh_starts_and_stops(context):
    widget = ClusterWidget(context, period=0.05)
    widget.summary.value = ""
    widget.start()
    deadline = time.monotonic() + 10
    while "2 workers" not in widget.summary.value:
        assert time.monotonic() < deadline, "no refresh happened"
        time.sleep(0.05)
    widget.stop()
    widget._thread.join(timeout=5)
    assert not widget._thread.is_alive()
    widget.close()


def test_a_context_from_an_address_has_no_scale_buttons(cli_cluster):
    address, _ = cli_cluster
    wb.stop()
    ctx = wb.init(cluster=address)
    ctx.client.wait_for_workers(2, timeout=60)
    try:
        widget = ClusterWidget(ctx)
        assert widget.scale_up is None and widget.scale_down is None
        assert "2 workers" in widget.summary.value
        widget.close()
    finally:
        wb.stop()


def test_bad_arguments():
    with pytest.raises(TypeError, match="workbench Context"):
        ClusterWidget("tcp://127.0.0.1:8786")


def test_context_displays_as_the_live_widget_with_an_html_fallback(context):
    bundle = context._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Workbench context" in bundle["text/html"] and bundle["text/plain"] == repr(context)
