"""The REST API of the server extension, against a real JupyterLab server and its kernels."""

from __future__ import annotations

import http.cookiejar
import urllib.request

import pytest

from .conftest import LabKernel, poll

API = "/workbench/api"

TRAIN = """
import numpy as np, torch
from workbench.train.callbacks import Callback
rng = np.random.default_rng(0)
x = rng.normal(size=(2048, 8)).astype(np.float32)
y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
def model():
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
class Boom(Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("boom at the first epoch end")
"""
LONG_FIT = ("est = wb.Estimator.from_torch(model, optimizer='sgd', loss='cross_entropy', metrics=['accuracy'])\n"
            "est.fit((x, y), epochs=500, batch_size=32, log_every=2, progress=None)")


def clusters(lab) -> list[dict]:
    status, body = lab.request("GET", f"{API}/clusters")
    assert status == 200, body
    return body["clusters"]


def jobs(lab) -> list[dict]:
    status, body = lab.request("GET", f"{API}/jobs")
    assert status == 200, body
    return body["jobs"]


def kernel_cluster(lab, kernel: LabKernel) -> dict:
    (cluster,) = [c for c in clusters(lab) if c["kernel_id"] == kernel.id]
    return cluster


ENDPOINTS = [("GET", "/clusters"), ("POST", "/clusters"), ("PATCH", "/clusters/server-1"),
             ("DELETE", "/clusters/server-1"), ("GET", "/jobs"), ("GET", "/jobs/abc"), ("POST", "/jobs/abc/stop")]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_refuses_a_request_without_the_token(lab, method, path):
    status, body = lab.request(method, API + path, body={} if method in ("POST", "PATCH") else None, token=False)
    assert status in (401, 403), (status, body)


@pytest.mark.parametrize(("method", "path"), [m for m in ENDPOINTS if m[0] != "GET"])
def test_mutating_requests_with_the_login_cookie_need_the_xsrf_token(lab, method, path):
    cookies = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    browser.open(f"{lab.url}/lab?token={lab.token}", timeout=30).read()  # logs in: sets the cookies
    xsrf = next(cookie.value for cookie in cookies if cookie.name == "_xsrf")
    body = {"workers": 0} if method in ("POST", "PATCH") else None  # refused by validation once past XSRF

    status, answer = lab.request(method, API + path, body=body, token=False, opener=browser)
    assert status == 403 and "xsrf" in answer["message"].lower(), (status, answer)

    status, answer = lab.request(method, API + path, body=body, token=False, opener=browser,
                                 headers={"X-XSRFToken": xsrf})
    assert status in (400, 404), (status, answer)  # authenticated: the request itself is judged


def test_a_kernels_context_is_listed_with_its_workers_and_notebook(lab, kernel):
    cluster = kernel_cluster(lab, kernel)
    assert cluster["owner"] == "kernel" and cluster["kind"] == "local"
    assert cluster["notebook"] == "report.ipynb"
    assert len(cluster["workers"]) == 2
    for worker in cluster["workers"]:
        assert worker["cores"] == 1 and worker["memory"] > 0 and worker["memory_used"] > 0
        assert worker["status"] == "running" and worker["address"].startswith("tcp://127.0.0.1:")
    assert cluster["dashboard"].startswith("http://127.0.0.1:")
    assert cluster["can_scale"] and cluster["can_stop"]
    assert cluster["connect"] == f'wb.init(cluster="{cluster["scheduler"]}")'


def test_scaling_a_kernels_cluster_changes_its_workers(lab, kernel):
    cluster = kernel_cluster(lab, kernel)
    status, answer = lab.request("PATCH", f"{API}/clusters/{cluster['id']}", {"workers": 3})
    assert status == 200, answer
    poll(lambda: len(kernel_cluster(lab, kernel)["workers"]), lambda n: n == 3)
    assert kernel.run("print(len(ctx.workers))").strip() == "3"  # the notebook's context sees them

    status, answer = lab.request("PATCH", f"{API}/clusters/{cluster['id']}", {"workers": 2})
    assert status == 200, answer
    poll(lambda: len(kernel_cluster(lab, kernel)["workers"]), lambda n: n == 2)


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"workers": 0}, 400, "'workers' must be an integer >= 1"),
    ({"workers": "two"}, 400, "'workers' must be an integer >= 1"),
    ({}, 400, "'workers' must be an integer >= 1"),
    (["workers"], 400, "must be a JSON object"),
])
def test_a_bad_scale_request_is_a_400_naming_the_problem(lab, kernel, body, status, words):
    cluster = kernel_cluster(lab, kernel)
    answer_status, answer = lab.request("PATCH", f"{API}/clusters/{cluster['id']}", body)
    assert answer_status == status and words in answer["message"], answer


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PATCH", "/clusters/kernel-000000000000", {"workers": 2}), ("DELETE", "/clusters/nope", None),
    ("GET", "/jobs/0123456789ab", None), ("POST", "/jobs/0123456789ab/stop", None),
])
def test_unknown_ids_are_a_404_json_error(lab, kernel, method, path, body):
    status, answer = lab.request(method, API + path, body)
    assert status == 404, answer
    assert answer["message"].startswith("no ") and path.split("/")[2] in answer["message"]


def test_a_running_fit_is_a_job_whose_loss_moves_and_stop_ends_it(lab, kernel):
    kernel.run(TRAIN)
    request = kernel.start(LONG_FIT)
    job = poll(lambda: next((j for j in jobs(lab) if j["status"] == "running" and j["loss"] is not None), None),
               lambda j: j is not None)
    assert job["name"] == "Sequential" and job["kernel_id"] == kernel.id and job["notebook"] == "report.ipynb"
    assert job["epochs"] == 500 and job["workers"] == 2 and job["steps_per_epoch"] == 64
    later = poll(lambda: next(j for j in jobs(lab) if j["id"] == job["id"]), lambda j: j["step"] > job["step"] + 4)
    assert later["loss"] != job["loss"] and 0 < later["progress"] < 1 and len(later["sparkline"]) > 1

    status, detail = lab.request("GET", f"{API}/jobs/{job['id']}")
    assert status == 200 and detail["id"] == job["id"]
    assert len(detail["steps"]["step"]) == len(detail["steps"]["loss"]) >= 3
    assert detail["steps"]["step"] == sorted(detail["steps"]["step"])

    status, stopping = lab.request("POST", f"{API}/jobs/{job['id']}/stop")
    assert status == 202 and stopping["status"] == "stopping", stopping
    kernel.wait(request, timeout=120)  # the cell ends: the fit stopped
    stopped = next(j for j in jobs(lab) if j["id"] == job["id"])
    assert stopped["status"] == "stopped" and stopped["ended"] is not None and stopped["epoch"] < 500
    assert int(kernel.run("print(len(est.history_))")) == stopped["epoch"]

    status, answer = lab.request("POST", f"{API}/jobs/{job['id']}/stop")
    assert status == 409 and "not running" in answer["message"]


def test_finished_and_failed_fits_are_jobs_with_their_outcome(lab, kernel):
    kernel.run(TRAIN)
    kernel.run("est = wb.Estimator.from_torch(model, optimizer='adam', loss='cross_entropy', metrics=['accuracy'])\n"
               "est.fit((x, y), epochs=2, batch_size=64, progress=None, validation_data=(x, y))")
    finished = jobs(lab)[0]
    assert finished["status"] == "finished" and finished["progress"] == 1.0 and finished["epoch"] == 2
    assert set(finished["metrics"]) == {"accuracy", "val_loss", "val_accuracy"}

    failing = kernel.start("est.fit((x, y), epochs=3, batch_size=64, progress=None, callbacks=[Boom()])")
    assert kernel.wait(failing, expect_error=True) == "RuntimeError: boom at the first epoch end"
    failed = jobs(lab)[0]
    assert failed["id"] != finished["id"]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom at the first epoch end"


def test_stopping_a_kernels_cluster_closes_its_context(lab):
    other = LabKernel(lab, "other.ipynb")
    try:
        other.run("import workbench as wb\nwb.init(workers=1)")
        (cluster,) = [c for c in clusters(lab) if c["kernel_id"] == other.id]
        status, answer = lab.request("DELETE", f"{API}/clusters/{cluster['id']}")
        assert status == 204, answer
        assert other.run("print(wb.current())").strip() == "None"
        assert not [c for c in clusters(lab) if c["kernel_id"] == other.id]
    finally:
        other.shutdown()


def test_a_new_local_cluster_is_owned_by_the_server_and_joined_by_address(lab, kernel):
    status, cluster = lab.request("POST", f"{API}/clusters", {"workers": 1})
    assert status == 201, cluster
    try:
        assert cluster["owner"] == "server" and cluster["kind"] == "local" and cluster["kernel_id"] is None
        assert len(cluster["workers"]) == 1 and cluster["can_scale"]
        assert cluster["id"] in [c["id"] for c in clusters(lab)]

        joiner = LabKernel(lab, "joiner.ipynb")
        try:
            joiner.run(f"import workbench as wb\nctx = {cluster['connect']}")
            (joined,) = [c for c in clusters(lab) if c["kernel_id"] == joiner.id]
            assert joined["kind"] == "address" and joined["scheduler"] == cluster["scheduler"]
            assert not joined["can_scale"]  # a bare address: the server owns the cluster
            status, answer = lab.request("PATCH", f"{API}/clusters/{joined['id']}", {"workers": 2})
            assert status == 409 and "cannot be scaled" in answer["message"]
            joiner.run("wb.stop()")
        finally:
            joiner.shutdown()

        status, scaled = lab.request("PATCH", f"{API}/clusters/{cluster['id']}", {"workers": 2})
        assert status == 200, scaled
        poll(lambda: next(c for c in clusters(lab) if c["id"] == cluster["id"])["workers"], lambda w: len(w) == 2)
    finally:
        status, answer = lab.request("DELETE", f"{API}/clusters/{cluster['id']}")
    assert status == 204, answer
    assert cluster["id"] not in [c["id"] for c in clusters(lab)]


def test_a_kernel_that_went_away_is_dropped(lab):
    gone = LabKernel(lab, "gone.ipynb")
    gone.run("import workbench as wb\nwb.init(workers=1)")
    assert [c for c in clusters(lab) if c["kernel_id"] == gone.id]
    sockets = set(lab.runtime_dir.glob("workbench-lab-*/*.sock"))
    gone.shutdown()
    poll(lambda: [c for c in clusters(lab) if c["kernel_id"] == gone.id], lambda found: not found)
    assert len(set(lab.runtime_dir.glob("workbench-lab-*/*.sock"))) == len(sockets) - 1
