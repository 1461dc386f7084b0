"""Fixtures of tests/serving.

HTTP serving: a model trained on a table and saved once per module, and `workbench serve`
processes serving it. Queue serving: a real redis-server.

``make_mlp`` is also what the servers rebuild the saved model with (``--model
tests.serving.conftest:make_mlp``, imported from the repository root), so no code stored in
the saved directory runs.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

import workbench as wb

WORKBENCH = str(Path(sys.executable).with_name("workbench"))
REPOSITORY = Path(__file__).resolve().parents[2]
MAKE_MLP = "tests.serving.conftest:make_mlp"
COLUMNS = ["x0", "x1", "x2", "x3"]


def make_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


@dataclass(frozen=True)
class SavedModel:
    """A saved model, rows it was not trained on, and ``Estimator.predict``'s outputs for them."""

    path: Path
    rows: np.ndarray
    reference: np.ndarray


@pytest.fixture(scope="module")
def saved_mlp(tmp_path_factory) -> SavedModel:
    """A 3-class MLP fitted on the table columns x0..x3 by a 2-worker cluster, then saved."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1000, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)
    table = pd.DataFrame(features[:800], columns=COLUMNS).assign(label=labels[:800])
    held_out = pd.DataFrame(features[800:], columns=COLUMNS)
    path = tmp_path_factory.mktemp("served") / "mlp"
    wb.stop()
    wb.init(workers=2)
    try:
        estimator = wb.Estimator.from_torch(make_mlp, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.01},
                                            loss="cross_entropy", metrics=["accuracy"])
        estimator.fit(table, feature_cols=COLUMNS, label_cols="label", epochs=2, batch_size=64, progress=None)
        estimator.save(path)
        reference = estimator.predict(held_out).compute().to_numpy()
    finally:
        wb.stop()
    return SavedModel(path, features[800:], reference)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class Server:
    """A `workbench serve MODEL --port 0 ...` process, the URL it printed, and HTTP calls to it."""

    def __init__(self, model: Path, *options: str, log: Path, token: str | None = None):
        self.token, self.log = token, log
        command = [WORKBENCH, "serve", str(model), "--port", "0", "--model", MAKE_MLP, *options]
        if token is not None:
            command += ["--token", token]
        with log.open("w") as stderr:
            self.process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.url = self._printed_url()

    def _printed_url(self, timeout: float = 120) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("Serving "):
            self.stop()
            raise AssertionError(f"workbench serve printed {line!r}, not its URL:\n{self.log.read_text()}")
        return line.split(" on ")[-1].strip()

    def call(self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             authorize: bool = True) -> Answer:
        """A GET (no body) or POST to ``path``; ``authorize``: with the server's token, if it has one."""
        headers = dict(headers or {})
        if authorize and self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def post(self, payload: object) -> Answer:
        return self.call("/predict", json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        """Every sample of /metrics, by name and labels (parsed by prometheus_client's parser)."""
        answer = self.call("/metrics")
        assert answer.status == 200, answer.body
        return {(sample.name, frozenset(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(answer.body.decode()) for sample in family.samples}

    def wait_for_queued(self, requests: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (queued := self.metrics()[("workbench_queued_requests", frozenset())]) != requests:
            assert time.monotonic() < deadline, f"{queued} requests queued, not {requests}"
            time.sleep(0.05)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit status (the process is killed if it does not exit in ``timeout`` s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"workbench serve did not exit {timeout} s after SIGTERM:\n{self.log.read_text()}")
        finally:
            self.process.stdout.close()


def metric(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled series not created yet (nothing counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def start_server(tmp_path) -> Iterator:
    """``start_server(model, *options, token=None)`` starts `workbench serve`; every one is stopped after the test."""
    servers: list[Server] = []

    def start(model: Path, *options: str, token: str | None = None) -> Server:
        servers.append(Server(model, *options, log=tmp_path / f"serve-{len(servers)}.log", token=token))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
