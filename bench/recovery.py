"""Fault tolerance: what a lost worker costs a fit, and what snapshots cost when nothing fails.

On a 3-worker local cluster, an MLP fit of 4 epochs (200 steps, a snapshot every 10 steps)
has one worker process SIGKILLed in the middle of epoch 2. Prints medians over a few runs of:
detection (kill to the driver's recovery start), recovery (rollback, re-sharding and new
parameter-server shards until training resumes), steps replayed, and the whole fit's time
against the same fit without the kill; then the cost of snapshots in a fit without failures.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workbench as wb  # noqa: E402
from tests.train import faults  # noqa: E402  (the row-counting task of the fault-tolerance tests)
from workbench.train import Callback  # noqa: E402

RUNS = 3
EPOCHS = 4
KILL_STEP = 75


class Kill(Callback):
    def on_batch_end(self, step, logs=None):
        if step >= KILL_STEP and not hasattr(self, "at"):
            pids = wb.current().client.run(os.getpid)
            os.kill(pids[self.estimator.workers_[1]], signal.SIGKILL)
            self.at = time.time()


def timed_fit(callbacks, snapshot_every=10) -> tuple[float, wb.Estimator]:
    estimator = faults.estimator()
    started = time.perf_counter()
    estimator.fit(faults.rows_with_ids(), epochs=EPOCHS, batch_size=faults.BATCH, snapshot_every=snapshot_every,
                  log_every=1, callbacks=callbacks, verbose=False)
    return time.perf_counter() - started, estimator


def main() -> None:
    detection, recovery, replayed, with_kill, without_kill, no_snapshots = [], [], [], [], [], []
    for _ in range(RUNS):
        wb.init(workers=3)
        without_kill.append(timed_fit([])[0])
        no_snapshots.append(timed_fit([], snapshot_every=None)[0])
        killer = Kill()
        seconds, estimator = timed_fit([killer])
        with_kill.append(seconds)
        lost = estimator.events_[estimator.events_["kind"] == "workers_lost"].iloc[0]
        detection.append(lost["time"] - killer.at)
        recovery.append(lost["recovery_s"])
        replayed.append(lost["steps_replayed"])
        wb.stop()
    median = statistics.median
    print(f"fault tolerance (3 workers, {EPOCHS} epochs x 50 steps, snapshot every 10 steps; median of {RUNS})")
    print(f"  detection: kill -> recovery starts       {median(detection) * 1000:8.0f} ms")
    print(f"  recovery: rollback, re-shard, restart    {median(recovery) * 1000:8.0f} ms")
    print(f"  steps replayed per failure               {median(replayed):8.0f}")
    print(f"  fit with one worker killed               {median(with_kill):8.2f} s   "
          f"vs {median(without_kill):.2f} s without: {median(with_kill) / median(without_kill):.2f}x")
    print(f"  snapshots every 10 steps (no failure)    {median(without_kill):8.2f} s   "
          f"vs {median(no_snapshots):.2f} s at epoch ends only: {median(without_kill) / median(no_snapshots):.2f}x")


if __name__ == "__main__":
    main()
