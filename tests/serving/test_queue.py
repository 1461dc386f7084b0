"""Queue serving on Redis streams: a real redis-server, consumers on the workers of a real 2-worker cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import numpy as np
import pytest
import redis

from workbench.serving import InferenceModel
from workbench.serving.queue import InputQueue, OutputQueue, RequestError, serve_queue

from .conftest import WORKBENCH, make_mlp

GROUP = "workbench-serving"  # serve_queue's default consumer group


@pytest.fixture(scope="module")
def trained(saved_mlp):
    """The saved MLP as an InferenceModel, rows it was not trained on, and Estimator.predict's outputs for them."""
    return InferenceModel.load(saved_mlp.path, model=make_mlp), saved_mlp.rows, saved_mlp.reference


@pytest.fixture
def stream() -> str:
    """A stream of the test's own, so that no test sees another's requests."""
    return f"test:{uuid.uuid4().hex[:8]}"


def ids(count: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def answers(url: str, stream: str, request_ids: list[str], timeout: float = 60) -> np.ndarray:
    """The results of ``request_ids``, all answered within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with OutputQueue(url, stream=stream) as output:
        results = [output.query(request_id, timeout=max(0.0, deadline - time.monotonic()))
                   for request_id in request_ids]
    unanswered = [request_id for request_id, result in zip(request_ids, results) if result is None]
    assert not unanswered, f"{len(unanswered)} requests not answered in {timeout} s: {unanswered[:5]}"
    return np.stack(results)


def test_every_request_gets_the_models_answer_from_consumers_on_both_workers(context, trained, redis_url, stream):
    model, features, expected = trained
    with serve_queue(model, redis_url, stream=stream, batch_size=8) as server:
        workers = set(server.status().consumers.values())
        assert workers == {worker.address for worker in context.workers}
        with InputQueue(redis_url, stream=stream) as requests:
            requests.enqueue_batch(ids(198), list(features[:198]))
            requests.enqueue("one", features[198])  # one sample, as an array
            requests.enqueue("named", {"features": features[199]})  # as arrays by input name

        np.testing.assert_allclose(answers(redis_url, stream, ids(198) + ["one", "named"]), expected,
                                   rtol=1e-5, atol=1e-6)

        status = server.status()
        by_worker = {worker: sum(n for name, n in status.answered.items() if status.consumers[name] == worker)
                     for worker in workers}
        assert sum(by_worker.values()) == 200 and min(by_worker.values()) > 0, by_worker  # both answered
        assert status.pending == 0
        with redis.Redis.from_url(redis_url) as connection:
            assert connection.xlen(stream) == 0  # answered requests leave the stream

    assert server.wait(timeout=0)  # stopped
    with redis.Redis.from_url(redis_url) as connection:
        assert connection.xinfo_consumers(stream, GROUP) == []  # stopped consumers left the group
    with OutputQueue(redis_url, stream=stream) as output:
        np.testing.assert_allclose(output.query("r7"), expected[7], rtol=1e-5, atol=1e-6)  # results outlive the server


def test_a_request_that_does_not_fit_gets_an_error_and_the_others_their_answers(context, trained, redis_url, stream):
    model, features, expected = trained
    bad = {"wide": np.zeros(5, np.float32), "batch": features[:3], "text": np.array(["a", "b", "c", "d"]),
           "unknown-input": {"pixels": features[0]}}
    with serve_queue(model, redis_url, stream=stream, batch_size=16) as server:
        with InputQueue(redis_url, stream=stream) as requests:
            requests.enqueue_batch(ids(10) + list(bad), list(features[:10]) + list(bad.values()))
            requests.enqueue_batch(ids(10, "later"), list(features[10:20]))
        np.testing.assert_allclose(answers(redis_url, stream, ids(10) + ids(10, "later")), expected[:20],
                                   rtol=1e-5, atol=1e-6)
        with OutputQueue(redis_url, stream=stream) as output:
            with pytest.raises(RequestError, match=r"'wide' failed: .*expected shape \(batch, 4\), got \(1, 5\)"):
                output.query("wide", timeout=30)
            with pytest.raises(RequestError, match=r"expected shape \(batch, 4\), got \(1, 3, 4\)"):
                output.query("batch", timeout=30)
            with pytest.raises(RequestError, match="expected dtype float32, got <U1"):
                output.query("text", timeout=30)
            with pytest.raises(RequestError, match=r"missing \['features'\]; unknown \['pixels'\]"):
                output.query("unknown-input", timeout=30)
        assert len(server.status().consumers) == 2  # no consumer fell over


def test_ids_are_refused_while_waiting_and_reused_once_answered(context, trained, redis_url, stream):
    model, features, expected = trained
    with InputQueue(redis_url, stream=stream) as requests, OutputQueue(redis_url, stream=stream) as output:
        requests.enqueue("a", features[0])  # queued before any server runs: served once one starts
        with pytest.raises(ValueError, match=r"ids \['a'\] are still waiting for their answers"):
            requests.enqueue("a", features[1])
        with pytest.raises(ValueError, match=r"ids \['b'\] appear more than once"):
            requests.enqueue_batch(["b", "c", "b"], list(features[:3]))
        with pytest.raises(ValueError, match="still waiting"):
            requests.enqueue_batch(["c", "a"], list(features[:2]))
        with pytest.raises(KeyError, match="no request 'c'"):  # all or nothing: "c" was not queued either
            output.query("c")
        with pytest.raises(TypeError, match="a request id must be a non-empty string"):
            requests.enqueue(7, features[0])
        with pytest.raises(TypeError, match="an array of Python objects cannot be queued"):
            requests.enqueue("objects", np.array([{"x": 1}], dtype=object))
        assert output.query("a") is None  # not answered yet
        assert output.query("a", timeout=0.2) is None

        with serve_queue(model, redis_url, stream=stream):
            np.testing.assert_allclose(output.query("a", timeout=30), expected[0], rtol=1e-5, atol=1e-6)
            requests.enqueue("a", features[5])  # answered: the id may be used again, for a new answer
            np.testing.assert_allclose(output.query("a", timeout=30), expected[5], rtol=1e-5, atol=1e-6)


def test_results_expire_after_their_ttl(context, trained, redis_url, stream):
    model, features, expected = trained
    with serve_queue(model, redis_url, stream=stream, result_ttl_s=1):
        with InputQueue(redis_url, stream=stream) as requests, OutputQueue(redis_url, stream=stream) as output:
            requests.enqueue("short-lived", features[0])
            np.testing.assert_allclose(output.query("short-lived", timeout=30), expected[0], rtol=1e-5, atol=1e-6)
            answered = time.monotonic()
            with pytest.raises(KeyError, match="its result expired"):
                while time.monotonic() - answered < 10:
                    output.query("short-lived")
                    time.sleep(0.05)
            assert time.monotonic() - answered > 0.5


def test_a_failing_consumer_stops_the_server_and_wait_raises(context, trained, redis_url, stream):
    model, _, _ = trained
    server = serve_queue(model, redis_url, stream=stream, block_ms=50)
    with redis.Redis.from_url(redis_url) as connection:
        connection.xgroup_destroy(stream, GROUP)  # the consumers' group is gone
    with pytest.raises(RuntimeError, match=r"stopped: consumer .* failed: .*NOGROUP"):
        server.wait(timeout=30)
    with redis.Redis.from_url(redis_url) as connection:  # every consumer ended (closed its connection)
        assert not [c for c in connection.client_list() if c["name"].endswith(server.settings.run)]


def queue_while_frozen(pid: int, consumer: str, rows: np.ndarray, url: str, stream: str) -> tuple[list[str], list[str]]:
    """Freeze worker process ``pid`` (SIGSTOP) while its ``consumer`` waits in XREADGROUP, and queue
    ``rows``: Redis hands that consumer a batch it cannot answer. Returns the ids queued and those it holds."""
    sent: list[str] = []
    with redis.Redis.from_url(url) as connection, InputQueue(url, stream=stream) as requests:
        while True:
            os.kill(pid, signal.SIGSTOP)
            if any(c["name"] == consumer and "b" in c["flags"] for c in connection.client_list()):  # blocked
                sent += ids(len(rows), f"round{len(sent) // len(rows)}-")
                requests.enqueue_batch(sent[-len(rows):], list(rows))
                held = connection.xpending_range(stream, GROUP, "-", "+", 100, consumername=consumer)
                if held:
                    return sent, [connection.xrange(stream, entry["message_id"], entry["message_id"])[0][1][b"id"]
                                  .decode() for entry in held]
            os.kill(pid, signal.SIGCONT)  # it was between two reads, or its read timed out just before the requests
            time.sleep(0.05)


def consumer_on(server, worker: str) -> str:
    return next(name for name, where in server.status().consumers.items() if where == worker)


def test_a_request_answered_twice_keeps_one_result_and_never_replaces_a_newer_one(context, trained, redis_url,
                                                                                  stream):
    model, features, expected = trained
    pids = context.client.run(os.getpid)
    slow = sorted(pids)[0]
    with serve_queue(model, redis_url, stream=stream, batch_size=4, claim_idle_ms=1000) as server:
        sent, held = queue_while_frozen(pids[slow], consumer_on(server, slow), features, redis_url, stream)
        reference = np.tile(expected, (len(sent) // len(features), 1))
        try:
            # the other consumer claims the batch after claim_idle_ms and answers everything
            np.testing.assert_allclose(answers(redis_url, stream, sent), reference, rtol=1e-5, atol=1e-6)
            with InputQueue(redis_url, stream=stream) as requests:
                requests.enqueue(held[0], features[-1])  # a held id, used again for another row
            np.testing.assert_allclose(answers(redis_url, stream, held[:1]), expected[-1:], rtol=1e-5, atol=1e-6)
        finally:
            os.kill(pids[slow], signal.SIGCONT)  # the slow consumer answers its batch too
        # every request once, the newer one, and the slow consumer's batch but for the id used again
        answered = len(sent) + 1 + len(held) - 1
        deadline = time.monotonic() + 30
        while sum(server.status().answered.values()) < answered:
            assert time.monotonic() < deadline, f"the slow consumer did not answer its batch: {server.status()}"
            time.sleep(0.05)

        with redis.Redis.from_url(redis_url) as connection:
            assert len(list(connection.scan_iter(match=f"{stream}:result:*", count=1000))) == len(sent)  # one per id
        reference[sent.index(held[0])] = expected[-1]  # the newer request's answer stayed
        np.testing.assert_allclose(answers(redis_url, stream, sent), reference, rtol=1e-5, atol=1e-6)
        assert sum(server.status().answered.values()) == answered


def test_a_killed_worker_loses_no_request_and_answers_none_twice(context, trained, redis_url, stream):
    model, features, expected = trained
    pids = context.client.run(os.getpid)
    victim = sorted(pids)[0]
    with serve_queue(model, redis_url, stream=stream, batch_size=4, claim_idle_ms=1000) as server:
        sent, held = queue_while_frozen(pids[victim], consumer_on(server, victim), features, redis_url, stream)
        os.kill(pids[victim], signal.SIGKILL)
        assert len(held) == 4  # it died holding a batch, with hundreds of requests queued

        np.testing.assert_allclose(answers(redis_url, stream, sent), np.tile(expected, (len(sent) // len(features), 1)),
                                   rtol=1e-5, atol=1e-6)
        with redis.Redis.from_url(redis_url) as connection:
            assert len(list(connection.scan_iter(match=f"{stream}:result:*", count=1000))) == len(sent)  # one per id
            assert connection.xpending(stream, GROUP)["pending"] == 0

        deadline = time.monotonic() + 60  # the nanny restarts the worker, and the server gives it a consumer
        while len(set(server.status().consumers.values())) < 2:
            assert time.monotonic() < deadline, f"no consumer on a new worker: {server.status()}"
            time.sleep(0.2)
        assert victim not in server.status().consumers.values()


def test_workbench_serve_queue_answers_on_the_clusters_workers_and_stops_on_sigterm(context, saved_mlp, trained,
                                                                                    redis_url, stream, start_server):
    _, features, expected = trained
    server = start_server(saved_mlp.path, "--queue", redis_url, "--stream", stream,
                          "--cluster", context.scheduler_address, "--max-batch-size", "16")
    with redis.Redis.from_url(redis_url) as connection:
        assert len(connection.xinfo_consumers(stream, GROUP)) == 2  # one per worker, joined before the line printed
        with InputQueue(redis_url, stream=stream) as requests:
            requests.enqueue_batch(ids(50), list(features[:50]))
        np.testing.assert_allclose(answers(redis_url, stream, ids(50)), expected[:50], rtol=1e-5, atol=1e-6)

        assert server.stop() == 0
        assert connection.xinfo_consumers(stream, GROUP) == []  # they left the group
    assert len(context.workers) == 2  # the cluster it joined keeps running


def test_workbench_serve_refuses_options_of_the_other_mode(saved_mlp, redis_url):
    http_with_queue = subprocess.run([WORKBENCH, "serve", str(saved_mlp.path), "--queue", redis_url, "--token", "t"],
                                     capture_output=True, text=True, timeout=120)
    queue_without = subprocess.run([WORKBENCH, "serve", str(saved_mlp.path), "--stream", "s"],
                                   capture_output=True, text=True, timeout=120)
    assert http_with_queue.returncode == 2 and "--token apply to HTTP serving, not to --queue" in http_with_queue.stderr
    assert queue_without.returncode == 2 and "--stream only apply with --queue" in queue_without.stderr
