"""`workbench serve`: a real server process on 127.0.0.1 answering like Estimator.predict, refusing bad
requests with the right status and a message naming the problem, merging concurrent requests,
and answering every accepted request when stopped.
"""

from __future__ import annotations

import io
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from .conftest import COLUMNS, WORKBENCH, Server, metric

TOKEN = "s3cret-token"
MAX_BODY_BYTES = 16384
#: a server that never predicts a batch before it is full (64 rows) or the server stops
HOLDING = ("--max-batch-size", "64", "--max-latency-ms", "600000")


@pytest.fixture(scope="module")
def server(saved_mlp, tmp_path_factory):
    """One server for the module's simple request/answer tests (with a token and a small body limit)."""
    served = Server(saved_mlp.path, "--max-body-bytes", str(MAX_BODY_BYTES),
                    log=tmp_path_factory.mktemp("serve") / "serve.log", token=TOKEN)
    yield served
    assert served.stop() == 0


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def assert_same_outputs(outputs, expected: np.ndarray) -> None:
    """Equal to Estimator.predict's up to float32 rounding (a batch's size may change the last bits)."""
    np.testing.assert_allclose(np.asarray(outputs, dtype=np.float32), expected, rtol=1e-5, atol=1e-6)


def test_json_inputs_by_array_by_name_or_as_records_answer_like_estimator_predict(server, saved_mlp):
    rows, expected = saved_mlp.rows[:50], saved_mlp.reference[:50]
    records = [dict(zip(COLUMNS, map(float, row))) for row in rows]
    for payload in ({"inputs": rows.tolist()}, {"inputs": {"features": rows.tolist()}}, {"records": records}):
        answer = server.post(payload)
        assert answer.status == 200, answer.body
        assert answer.headers["content-type"] == "application/json"
        assert_same_outputs(answer.json()["outputs"], expected)


def test_npy_inputs_answer_npy_when_accepted_else_json(server, saved_mlp):
    body = npy(saved_mlp.rows)
    as_npy = server.call("/predict", body, {"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
    assert as_npy.status == 200 and as_npy.headers["content-type"] == "application/x-npy"
    output = np.load(io.BytesIO(as_npy.body), allow_pickle=False)
    assert output.dtype == np.float32 and output.shape == saved_mlp.reference.shape
    assert_same_outputs(output, saved_mlp.reference)
    as_json = server.call("/predict", body, {"Content-Type": "application/x-npy"})
    assert_same_outputs(as_json.json()["outputs"], saved_mlp.reference)


@pytest.mark.parametrize("body, message", [
    ({"inputs": [[0.1, 0.2, 0.3]] * 2}, "input 'features': expected shape (batch, 4), got (2, 3)"),
    ({"inputs": [["a", "b", "c", "d"]]}, "input 'features': expected dtype float32, got <U1"),
    ({"inputs": {"pixels": [[0.0] * 4]}}, "missing ['features']; unknown ['pixels']"),
    ({"rows": [[0.0] * 4]}, "unknown field(s) ['rows']"),
    ({}, 'missing field "inputs"'),
    ({"records": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}]}, "record 0: missing field(s) ['x3']"),
    ('{"inputs": [[0.1, NaN, 0.3, 0.4]]}', "NaN is not a JSON number"),
    ('{"inputs": [[0.1, 0.2', "the body is not valid JSON"),
], ids=["shape", "dtype", "input-name", "unknown-field", "missing-inputs", "record-field", "nan", "not-json"])
def test_a_request_that_does_not_fit_gets_400_naming_the_problem(server, body, message):
    raw = body if isinstance(body, str) else json.dumps(body)
    answer = server.call("/predict", raw.encode(), {"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.headers["content-type"] == "application/json"
    assert message in answer.json()["error"]


def test_npy_bodies_are_checked_and_never_unpickled(server):
    infinite = server.call("/predict", npy(np.array([[0.0, np.inf, 0.0, 0.0]], dtype=np.float32)),
                           {"Content-Type": "application/x-npy"})
    assert infinite.status == 400 and "NaN or infinite" in infinite.json()["error"]
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused = server.call("/predict", pickled.getvalue(), {"Content-Type": "application/x-npy"})
    assert refused.status == 400 and "allow_pickle=False" in refused.json()["error"]


def test_a_body_over_the_limit_gets_413_whether_declared_or_streamed(server):
    rows = np.zeros((MAX_BODY_BYTES // 16, 4), dtype=np.float32).tolist()
    body = json.dumps({"inputs": rows}).encode()
    assert len(body) > MAX_BODY_BYTES
    declared = server.call("/predict", body, {"Content-Type": "application/json"})  # with its Content-Length
    streamed = server.call("/predict", iter([body[:8192], body[8192:]]), {"Content-Type": "application/json"})
    for answer in (declared, streamed):  # urllib sends an iterable body chunked, with no Content-Length
        assert answer.status == 413
        assert f"limit of {MAX_BODY_BYTES} bytes" in answer.json()["error"]


def test_without_the_token_only_health_answers(server):
    for path, body in (("/predict", b'{"inputs": [[0, 0, 0, 0]]}'), ("/signature", None), ("/metrics", None)):
        for authorization in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
            answer = server.call(path, body, {"Content-Type": "application/json", **authorization}, authorize=False)
            assert answer.status == 401, (path, authorization)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in answer.json()["error"]
    health = server.call("/health", authorize=False)
    assert health.status == 200
    assert health.json() == {"status": "ok", "model": "mlp", "backend": "torch"}


def test_signature_is_the_one_recorded_by_fit(server):
    assert server.call("/signature").json() == {
        "inputs": [{"name": "features", "shape": [None, 4], "dtype": "float32"}],
        "outputs": [{"name": "prediction", "shape": [None, 3], "dtype": "float32"}],
        "columns": COLUMNS,
    }


def test_metrics_count_requests_by_route_and_status_and_the_rows_predicted(server, saved_mlp):
    before = server.metrics()
    for rows in (1, 2, 3):
        assert server.post({"inputs": saved_mlp.rows[:rows].tolist()}).status == 200
    assert server.post({"inputs": [[1.0]]}).status == 400
    after = server.metrics()

    def increase(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert increase("workbench_requests_total", route="/predict", code="200") == 3
    assert increase("workbench_requests_total", route="/predict", code="400") == 1
    assert increase("workbench_request_duration_seconds_count", route="/predict") == 4
    assert increase("workbench_predicted_rows_total") == 6
    assert increase("workbench_batch_rows_count") == 3
    assert increase("workbench_requests_total", route="/metrics", code="200") == 1  # the first scrape
    assert metric(after, "workbench_queued_requests") == 0


def test_concurrent_requests_are_merged_into_one_model_call_and_each_gets_its_own_rows(start_server, saved_mlp):
    served = start_server(saved_mlp.path, *HOLDING)
    slices = [slice(0, 5), slice(5, 25), slice(25, 64)]  # 64 rows in all: the batch leaves once all three wait
    with ThreadPoolExecutor(len(slices)) as pool:
        answers = list(pool.map(lambda rows: served.post({"inputs": saved_mlp.rows[rows].tolist()}), slices))
    for rows, answer in zip(slices, answers):
        assert answer.status == 200, answer.body
        assert_same_outputs(answer.json()["outputs"], saved_mlp.reference[rows])
    samples = served.metrics()
    assert metric(samples, "workbench_batch_rows_count") == 1
    assert metric(samples, "workbench_batch_rows_sum") == 64
    assert metric(samples, "workbench_batch_rows_bucket", le="32.0") == 0  # the one batch was not a single request
    assert metric(samples, "workbench_predicted_rows_total") == 64


def test_a_full_queue_answers_503_with_retry_after(start_server, saved_mlp):
    served = start_server(saved_mlp.path, *HOLDING, "--max-queue", "4")
    with ThreadPoolExecutor(4) as pool:
        waiting = [pool.submit(served.post, {"inputs": saved_mlp.rows[:1].tolist()}) for _ in range(4)]
        served.wait_for_queued(4)
        refused = served.post({"inputs": saved_mlp.rows[:1].tolist()})
        assert refused.status == 503
        assert refused.headers["retry-after"] == "1"
        assert "4 requests are already waiting" in refused.json()["error"]
        assert metric(served.metrics(), "workbench_requests_total", route="/predict", code="503") == 1
        assert served.stop() == 0  # the queued requests are answered before the server exits
        assert [future.result().status for future in waiting] == [200] * 4


def test_sigterm_answers_every_accepted_request_then_exits_0(start_server, saved_mlp):
    served = start_server(saved_mlp.path, *HOLDING)
    requests = 24
    with ThreadPoolExecutor(requests) as pool:
        answers = [pool.submit(served.post, {"inputs": saved_mlp.rows[2 * i : 2 * i + 2].tolist()})
                   for i in range(requests)]
        served.wait_for_queued(requests)  # all accepted and waiting for a batch that is not full yet
        assert served.stop() == 0
        for i, answer in enumerate(answers):
            assert answer.result().status == 200
            assert_same_outputs(answer.result().json()["outputs"], saved_mlp.reference[2 * i : 2 * i + 2])
    assert "Finished server process" in served.log.read_text()


def test_serving_a_saved_model_without_trusting_its_code_or_naming_its_function_is_refused(saved_mlp):
    command = [WORKBENCH, "serve", str(saved_mlp.path), "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""  # never started serving
    assert result.stderr.startswith("workbench: error:") and "--trust-code" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
