"""HTTP serving: `workbench serve` of a small MLP under load from 1, 8 and 32 concurrent clients.

The MLP (64 -> 256 -> 256 -> 10) is trained for a few seconds on a synthetic 10-class task,
saved as TorchScript (served with ``--signature``), and optimized with
``InferenceModel.optimize``, whose report gives the ONNX Runtime model's accuracy change and
in-process speed-up on held-out rows; its ``.onnx`` file is served too. Three servers run side
by side on 127.0.0.1 (``--port 0``):

- torch, ``--max-batch-size 1``: no batching, the anchor;
- torch, dynamic batching (``--max-batch-size 64 --max-latency-ms 5``);
- onnxruntime, dynamic batching.

A measurement: every client keeps one HTTP/1.1 connection and sends its next JSON request
(ROWS rows) as soon as the answer came, for SECONDS seconds (at most MAX_REQUESTS requests)
after a short warm-up; the client is a small asyncio loop so that it takes little of the CPU
the server needs. ROUNDS rounds go over every concurrency and server in turn (so a busy moment
of the machine hits all settings alike); the table prints medians over the rounds of
requests/s, rows/s, p50/p99 latency, the non-200 answers (all rounds), and the throughput
ratio to the anchor at the same concurrency. Exits 1 on any error.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from workbench.serving import InferenceModel, Signature

CONCURRENCY = (1, 8, 32)
ROWS, ROUNDS, SECONDS, WARMUP_SECONDS, MAX_REQUESTS = 4, 3, 1.0, 0.3, 10_000
FEATURES, CLASSES = 64, 10
WORKBENCH = str(Path(sys.executable).with_name("workbench"))
BATCHING = ("--max-batch-size", "64", "--max-latency-ms", "5")
ANCHOR, TORCH, ONNX = "torch, batch 1 (anchor)", "torch, batching 64/5 ms", "onnxruntime, batching 64/5 ms"


def trained_mlp() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    """The MLP fitted to a random linear teacher's classes, and held-out rows with their labels."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(6000, FEATURES)).astype(np.float32)
    labels = (features @ rng.normal(size=(FEATURES, CLASSES))).argmax(axis=1)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, CLASSES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(features[:5000]), torch.from_numpy(labels[:5000])
    for epoch in range(8):
        for rows in torch.randperm(5000).split(100):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
            optimizer.step()
    return model.eval(), features[5000:], labels[5000:]


class Server:
    """A `workbench serve` process and the host and port it printed."""

    def __init__(self, *arguments: str):
        self.process = subprocess.Popen([WORKBENCH, "serve", *arguments, "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"on http://([\d.]+):(\d+)", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"workbench serve {' '.join(arguments)} printed {line!r}, not its URL")
        self.host, self.port = match[1], int(match[2])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


async def client(server: Server, body: bytes, until: float, budget: list[int], latencies: list[float]) -> int:
    """Requests over one keep-alive connection until ``until`` or the shared budget is spent; the errors."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    request = (f"POST /predict HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    errors = 0
    while time.perf_counter() < until and budget[0] > 0:
        budget[0] -= 1
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(re.search(rb"(?i)content-length: *(\d+)", head)[1]))
        latencies.append(time.perf_counter() - started)
        errors += head.split(b" ", 2)[1] != b"200"
    writer.close()
    await writer.wait_closed()
    return errors


async def load(server: Server, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` concurrent clients for ``seconds``: throughput, latency percentiles and errors."""
    latencies: list[float] = []
    budget = [MAX_REQUESTS]
    started = time.perf_counter()
    errors = await asyncio.gather(*(client(server, body, started + seconds, budget, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return {"requests_per_s": len(latencies) / elapsed, "p50_ms": p50, "p99_ms": p99, "errors": sum(errors)}


def measure(servers: dict[str, Server], body: bytes) -> dict[str, dict[int, dict[str, float]]]:
    """Each server's results at each concurrency: medians over ROUNDS rounds, errors summed."""
    rounds: dict[str, dict[int, list[dict[str, float]]]] = {name: {n: [] for n in CONCURRENCY} for name in servers}
    for _ in range(ROUNDS):
        for clients in CONCURRENCY:
            for name, server in servers.items():
                asyncio.run(load(server, body, clients, WARMUP_SECONDS))
                rounds[name][clients].append(asyncio.run(load(server, body, clients, SECONDS)))
    return {name: {clients: summary(runs) for clients, runs in results.items()} for name, results in rounds.items()}


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    """Medians over the rounds; errors summed."""
    return {key: sum(run[key] for run in runs) if key == "errors" else statistics.median(run[key] for run in runs)
            for key in runs[0]}


def main() -> int:
    model, features, labels = trained_mlp()
    signature = Signature.from_example(features[:1], model(torch.from_numpy(features[:1])).detach().numpy())
    body = json.dumps({"inputs": features[:ROWS].tolist()}).encode()
    with tempfile.TemporaryDirectory() as scratch:
        scripted, signature_file, onnx_file = (Path(scratch) / name for name in ("mlp.pt", "mlp.json", "mlp.onnx"))
        torch.jit.save(torch.jit.trace(model, torch.from_numpy(features[:2])), str(scripted))
        signature_file.write_text(json.dumps(signature.to_dict()))
        optimized = InferenceModel(model, signature).optimize((features, labels), path=onnx_file)
        torch_model = (str(scripted), "--signature", str(signature_file))
        servers = {}
        try:
            for name, arguments in ((ANCHOR, (*torch_model, "--max-batch-size", "1")),
                                    (TORCH, (*torch_model, *BATCHING)), (ONNX, (str(onnx_file), *BATCHING))):
                servers[name] = Server(*arguments)
            settings = measure(servers, body)
        finally:
            for server in servers.values():
                server.stop()
    print_table(settings)
    report = optimized.optimization_report_
    print(f"  InferenceModel.optimize report ({report.rows} held-out rows, in-process): {report.metric} "
          f"{report.before:.4f} -> {report.after:.4f} (change {report.change:+.4f}), "
          f"max |output difference| {report.max_abs_difference:.1e}, speed-up {report.speedup:.2f}x")
    errors = sum(result["errors"] for results in settings.values() for result in results.values())
    print(f"  errors: {errors}")
    return 1 if errors else 0


def print_table(settings: dict[str, dict[int, dict[str, float]]]) -> None:
    def rate(setting: str, clients: int) -> float:
        return settings[setting][clients]["requests_per_s"]

    print(f"workbench serve, {FEATURES}-256-256-{CLASSES} MLP, {ROWS} rows per JSON request, "
          f"median of {ROUNDS} rounds of {SECONDS:.0f} s (batching: {' '.join(BATCHING)})")
    print(f"  {'setting':<30} {'clients':>7} {'req/s':>8} {'rows/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'vs anchor':>9}")
    for name, results in settings.items():
        for clients, result in results.items():
            print(f"  {name:<30} {clients:>7} {rate(name, clients):>8.0f} {rate(name, clients) * ROWS:>8.0f} "
                  f"{result['p50_ms']:>7.1f} {result['p99_ms']:>7.1f} {result['errors']:>6} "
                  f"{rate(name, clients) / rate(ANCHOR, clients):>8.2f}x")
    ratios = ", ".join(f"{n} clients {rate(ONNX, n) / rate(TORCH, n):.2f}x" for n in CONCURRENCY)
    print(f"  onnxruntime vs torch over HTTP (both batching): {ratios}")


if __name__ == "__main__":
    sys.exit(main())
