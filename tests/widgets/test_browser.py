"""The widgets as an analyst sees them: JupyterLab in headless Chromium runs a notebook that
trains with the live dashboard, shows a result view, and stops a second fit with its Stop button.

Everything is asserted from the rendered page (widget text, the progress bar's width, the data
of the Bokeh plots). Screenshots of the dashboard and the result view go to ``test-artifacts/``;
``docs/images/dashboard.png`` in the README is one of them.
"""

from __future__ import annotations

import re
import time

import pytest

from ..browser import bokeh_sources, open_notebook, run_all_cells, screenshot, write_notebook

EPOCHS, ROWS, BATCH, LOG_EVERY = 3, 1280, 32, 4
STEPS = EPOCHS * ROWS // BATCH

CELLS = [
    f"""import numpy as np, torch
import workbench as wb
wb.init(workers=2)
rng = np.random.default_rng(0)
x = rng.normal(size=({ROWS}, 4)).astype(np.float32)
y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
def net():
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
est = wb.Estimator.from_torch(net, optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
est.fit((x, y), epochs={EPOCHS}, batch_size={BATCH}, validation_data=(x[:256], y[:256]), log_every={LOG_EVERY})""",
    'wb.widgets.show_classification(y, est.predict(x).argmax(1), labels=["negative", "positive"])',
    """long = wb.Estimator.from_torch(net, optimizer="sgd", loss="cross_entropy")
long.fit((x, y), epochs=1000, batch_size=32)""",
    'print(f"stopped after {len(long.history_)} epochs")',
]


@pytest.fixture(scope="module")
def notebook(jupyter_lab, page):
    """The notebook, opened and run; yields its cells (a Playwright locator)."""
    write_notebook(jupyter_lab.root / "widgets.ipynb", CELLS)
    open_notebook(page, jupyter_lab, "widgets.ipynb")
    run_all_cells(page)
    yield page.locator(".jp-Notebook .jp-CodeCell")
    page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")


def test_dashboard_shows_the_fit_as_it_runs(page, notebook):
    dashboard = notebook.nth(0).locator(".jp-OutputArea")
    status = dashboard.locator(".widget-html").first
    widths = []  # the progress bar's width, sampled while the fit runs
    deadline = time.monotonic() + 240
    while "done" not in (status.text_content(timeout=240_000) or ""):
        widths.append(_progress_width(dashboard))
        assert time.monotonic() < deadline, f"the fit did not finish; status: {status.text_content()}"
        time.sleep(0.2)

    assert f"epoch {EPOCHS}/{EPOCHS}" in status.text_content()
    assert _progress_width(dashboard) == 100.0 and any(0 < w for w in widths), widths
    assert dashboard.locator("table").first.text_content().count("alive") == 2  # both workers

    sources = _await_sources(page, lambda sources: any(s.get("loss") == STEPS // LOG_EVERY for s in sources))
    screenshot(dashboard, "dashboard")
    loss_per_step = [s for s in sources if {"step", "loss"} <= set(s)]
    assert [s["loss"] for s in loss_per_step] == [STEPS // LOG_EVERY], sources
    per_epoch = [s for s in sources if {"epoch", "value"} <= set(s) and s["value"] == EPOCHS]
    assert len(per_epoch) >= 4, sources  # loss, accuracy, val_loss, val_accuracy


def test_result_view_renders_matrix_and_table(page, notebook):
    view = notebook.nth(1).locator(".jp-OutputArea")
    view.get_by_text("Classification results").first.wait_for(timeout=120_000)
    for expected in ("negative", "positive", "precision", "recall", "weighted avg"):  # the parts render in turn
        view.get_by_text(expected).first.wait_for(timeout=30_000)
    view.locator("canvas").first.wait_for(timeout=30_000)  # the heat map is drawn (in Bokeh's shadow DOM)
    heat_maps = [s for s in bokeh_sources(page) if {"predicted", "true", "count"} <= set(s)]
    assert [s["count"] for s in heat_maps] == [4]  # the 2 x 2 confusion matrix
    screenshot(view, "result-view")


def test_stop_button_ends_a_running_fit(page, notebook):
    dashboard = notebook.nth(2).locator(".jp-OutputArea")
    dashboard.get_by_text(re.compile(r"step \d+/\d+")).first.wait_for(timeout=120_000)
    dashboard.get_by_role("button", name="Stop").click()

    printed = notebook.nth(3).locator(".jp-OutputArea").get_by_text(re.compile(r"stopped after \d+ epochs"))
    printed.wait_for(timeout=120_000)
    assert int(re.search(r"\d+", printed.text_content()).group()) < 1000
    assert "stopped" in dashboard.locator(".widget-html").first.text_content()


def _await_sources(page, drawn, timeout_s: float = 20) -> list[dict[str, int]]:
    """The page's Bokeh sources once ``drawn(sources)`` holds (the plot updates travel after the
    widget state), or as they are at the timeout, for the assertions to report."""
    deadline = time.monotonic() + timeout_s
    while not drawn(sources := bokeh_sources(page)) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    return sources


def _progress_width(output) -> float:
    """The progress bar's width in percent."""
    style = output.locator(".widget-hprogress .progress-bar").first.get_attribute("style") or ""
    match = re.search(r"width:\s*([\d.]+)%", style)
    return float(match.group(1)) if match else 0.0
