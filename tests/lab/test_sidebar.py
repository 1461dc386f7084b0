"""The Workbench sidebar in a real JupyterLab, driven in headless Chromium.

A notebook on the "Workbench (local)" kernel starts a context and a long fit; from the page the
test sees the sidebar list the context's workers, the job appear with a loss that changes, the
job view draw its curves, the scale buttons change the worker count, and Stop end the fit.
Screenshots go to ``test-artifacts/`` (docs/images/sidebar.png is a copy).
"""

from __future__ import annotations

import pytest

from ..browser import open_notebook, run_all_cells, screenshot, write_notebook

CELLS = [
    "import workbench as wb\nctx = wb.init(workers=2)",
    """import numpy as np, torch
rng = np.random.default_rng(0)
x = rng.normal(size=(4096, 16)).astype(np.float32)
y = (x[:, :4].sum(axis=1) > 0).astype(np.int64)
def mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
est = wb.Estimator.from_torch(mlp, optimizer="sgd", optimizer_kwargs={"lr": 0.05}, loss="cross_entropy",
                              metrics=["accuracy"])
est.fit((x, y), epochs=1000, batch_size=64, log_every=4, progress=None)""",
    'print(f"fit ended after {len(est.history_)} epochs")',
]
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def notebook_page(jupyter_lab, page):
    write_notebook(jupyter_lab.root / "sidebar.ipynb", CELLS, kernel=("workbench-local", "Workbench (local)"))
    open_notebook(page, jupyter_lab, "sidebar.ipynb")
    page.click('.jp-SideBar .lm-TabBar-tab[data-id="workbench-sidebar"]')
    page.wait_for_selector(".wb-sidebar", state="visible")
    return page


def workers(page) -> int:
    return page.locator(".wb-cluster .wb-worker").count()


def test_the_sidebar_opens_with_both_panels(notebook_page):
    sidebar = notebook_page.locator(".wb-sidebar")
    assert sidebar.locator(".wb-clusters h3").inner_text() == "Clusters"
    assert sidebar.locator(".wb-jobs h3").inner_text() == "Training jobs"
    notebook_page.wait_for_selector("text=No Workbench cluster yet")
    assert sidebar.locator(".wb-new-cluster").is_visible()


def test_the_cluster_panel_lists_the_workers_of_the_notebooks_context(notebook_page):
    run_all_cells(notebook_page)
    notebook_page.wait_for_function("document.querySelectorAll('.wb-cluster .wb-worker').length === 2",
                                    timeout=TIMEOUT_MS)
    cluster = notebook_page.locator(".wb-cluster")
    assert cluster.locator(".wb-cluster-kind").inner_text() == "local"
    assert "sidebar.ipynb" in cluster.inner_text()
    assert cluster.locator(".wb-cluster-summary").inner_text().startswith("2 workers · 2 cores")
    assert cluster.locator(".wb-dashboard-link").get_attribute("href").startswith("http://127.0.0.1:")


def test_a_running_fit_is_listed_and_its_loss_changes(notebook_page):
    job = notebook_page.locator('.wb-job[data-status="running"]')
    job.wait_for(timeout=TIMEOUT_MS)
    notebook_page.wait_for_function(
        "/^loss \\d/.test(document.querySelector('.wb-job[data-status=\"running\"] .wb-job-loss')?.textContent)",
        timeout=TIMEOUT_MS)
    first = job.locator(".wb-job-loss").inner_text()
    notebook_page.wait_for_function(
        "(first) => { const text = document.querySelector('.wb-job .wb-job-loss')?.textContent;"
        " return /^loss \\d/.test(text) && text !== first; }", arg=first, timeout=TIMEOUT_MS)
    assert job.locator(".wb-job-name").inner_text() == "Sequential"
    assert job.locator(".wb-job-status").inner_text().startswith("running")
    assert job.locator(".wb-sparkline path").count() >= 1
    screenshot(notebook_page.locator(".wb-sidebar"), "sidebar")


def test_clicking_the_job_opens_its_curves(notebook_page):
    notebook_page.locator(".wb-job .wb-job-name").click()
    view = notebook_page.locator(".wb-job-view")
    view.wait_for(timeout=TIMEOUT_MS)
    notebook_page.wait_for_function("document.querySelectorAll('.wb-job-view svg.wb-chart path').length >= 2",
                                    timeout=TIMEOUT_MS)
    assert view.locator("svg.wb-chart").count() >= 3  # loss per step, per-epoch metrics, samples/s
    screenshot(notebook_page, "job-view")


def test_scale_buttons_change_the_worker_count(notebook_page):
    notebook_page.locator(".wb-cluster .wb-scale-up").click()
    notebook_page.wait_for_function("document.querySelectorAll('.wb-cluster .wb-worker').length === 3",
                                    timeout=TIMEOUT_MS)
    assert notebook_page.locator(".wb-cluster-summary").inner_text().startswith("3 workers")


def test_stop_ends_the_fit(notebook_page):
    notebook_page.locator('.wb-job[data-status="running"] .wb-job-stop').click()
    notebook_page.locator('.wb-job[data-status="stopped"]').wait_for(timeout=TIMEOUT_MS)
    notebook_page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="sidebar.ipynb").click()  # from the job view
    notebook_page.wait_for_selector("text=/fit ended after \\d+ epochs/", timeout=TIMEOUT_MS)
    ended = notebook_page.locator(".jp-OutputArea-output", has_text="fit ended after").inner_text()
    assert int(ended.split()[3]) < 1000
    notebook_page.locator(".wb-cluster .wb-scale-down").click()  # no fit running: a worker leaves quietly
    notebook_page.wait_for_function("document.querySelectorAll('.wb-cluster .wb-worker').length === 2",
                                    timeout=TIMEOUT_MS)


def test_new_local_cluster_starts_one_owned_by_the_server_and_stop_closes_it(notebook_page):
    notebook_page.locator(".wb-new-cluster").click()
    server_cluster = notebook_page.locator(".wb-cluster", has=notebook_page.locator(".wb-cluster-owner", has_text="server"))
    server_cluster.wait_for(timeout=TIMEOUT_MS)
    notebook_page.wait_for_function(
        "[...document.querySelectorAll('.wb-cluster')].some(card =>"
        " card.querySelector('.wb-cluster-owner')?.textContent.includes('server')"
        " && card.querySelectorAll('.wb-worker').length === 2)", timeout=TIMEOUT_MS)
    assert server_cluster.locator(".wb-cluster-connect").inner_text().startswith('wb.init(cluster="tcp://127.0.0.1:')
    server_cluster.locator(".wb-cluster-stop").click()
    notebook_page.wait_for_function("document.querySelectorAll('.wb-cluster').length === 1", timeout=TIMEOUT_MS)
