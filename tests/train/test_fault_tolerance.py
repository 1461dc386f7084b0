"""Worker loss, added workers and restarts during fit, with real worker processes killed by PID.

Every fit here trains a model whose output echoes each row's number, so that a metric
counts how often every row was trained on in each epoch: it must be exactly once, whatever
happened during the epoch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import workbench as wb

from . import faults

EPOCHS = 4
STEPS_PER_EPOCH = faults.ROWS // faults.BATCH


@pytest.fixture
def three_workers(_module_cluster):
    wb.stop()
    context = wb.init(workers=3)
    yield context
    wb.stop()


@pytest.fixture(scope="module")
def test_rows():
    return faults.rows_with_ids(2000, seed=1)


@pytest.fixture(scope="module")
def reference_accuracy(_module_cluster, test_rows) -> float:
    """Accuracy of the same fit without failures."""
    wb.stop()
    wb.init(workers=3)
    try:
        estimator = faults.estimator()
        estimator.fit(faults.rows_with_ids(), epochs=EPOCHS, batch_size=faults.BATCH, snapshot_every=10, verbose=False)
        return estimator.evaluate(test_rows)["accuracy"]
    finally:
        wb.stop()


def check_every_row_once_per_epoch(history) -> None:
    assert list(history.index) == list(range(EPOCHS))
    assert (history["rows_not_once"] == 0).all(), history


def lost_events(estimator):
    return estimator.events_[estimator.events_["kind"] == "workers_lost"]


@pytest.mark.parametrize("kill_step, rank", [(75, 1), (63, 0)], ids=["mid-segment", "shard-0-holder"])
def test_fit_survives_a_killed_worker(three_workers, test_rows, reference_accuracy, kill_step, rank):
    killer = faults.KillAt(kill_step, lambda estimator: estimator.workers_[rank])
    estimator = faults.estimator()
    history = estimator.fit(faults.rows_with_ids(), epochs=EPOCHS, batch_size=faults.BATCH, snapshot_every=10,
                            log_every=1, callbacks=[killer], verbose=False)

    check_every_row_once_per_epoch(history)
    lost = lost_events(estimator)
    assert len(lost) == 1 and lost["workers"].iloc[0] == [killer.killed]
    assert lost["time"].iloc[0] - killer.killed_at < 5, "the driver noticed the loss within seconds"
    assert lost["rolled_back_to_step"].iloc[0] == kill_step // 10 * 10
    assert 0 <= lost["steps_replayed"].iloc[0] <= 10
    assert lost["recovery_s"].iloc[0] < 30
    assert estimator.evaluate(test_rows)["accuracy"] == pytest.approx(reference_accuracy, abs=0.01)


def test_fit_survives_a_worker_killed_while_it_writes_a_snapshot(three_workers, test_rows, reference_accuracy,
                                                                   tmp_path):
    announce = tmp_path / "announce"
    announce.mkdir()
    snapshot_step = 80  # in the middle of the second epoch
    faults.use_slow_snapshots(str(announce), snapshot_step)
    three_workers.client.register_plugin(faults.SlowSnapshots(str(announce), snapshot_step))
    stop = threading.Event()
    killed = faults.kill_first_announced_writer(announce, stop)
    estimator = faults.estimator()
    try:
        history = estimator.fit(faults.rows_with_ids(), epochs=EPOCHS, batch_size=faults.BATCH, snapshot_every=10,
                                checkpoint_dir=f"slowfile://{tmp_path / 'snapshots'}", verbose=False)
    finally:
        stop.set()

    check_every_row_once_per_epoch(history)
    assert len(killed) == 1
    lost = lost_events(estimator)
    assert len(lost) == 1
    assert lost["rolled_back_to_step"].iloc[0] == snapshot_step - 10, "the half-written snapshot was not used"
    assert lost["time"].iloc[0] - killed[0][1] < 5
    assert estimator.evaluate(test_rows)["accuracy"] == pytest.approx(reference_accuracy, abs=0.01)


def test_a_worker_added_mid_fit_trains_from_the_next_epoch(_module_cluster):
    wb.stop()
    context = wb.init(workers=2)
    try:
        class AddWorker(faults.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    context.cluster.scale(3)
                    context.client.wait_for_workers(3, timeout=60)

        estimator = faults.estimator()
        history = estimator.fit(faults.rows_with_ids(), epochs=3, batch_size=faults.BATCH, callbacks=[AddWorker()],
                                verbose=False)
        assert list(history["workers"]) == [2, 3, 3]
        assert (history["rows_not_once"] == 0).all()
        joined = estimator.events_[estimator.events_["kind"] == "workers_joined"]
        assert len(joined) == 1 and joined["epoch"].iloc[0] == 1
        assert joined["workers"].iloc[0][0] in estimator.workers_
    finally:
        wb.stop()


def committed_steps(checkpoint_dir) -> list[int]:
    return sorted(int(m.parent.name.split("-")[1]) for m in checkpoint_dir.glob("step-*/manifest.json"))


def test_a_new_process_resumes_a_killed_fit_from_its_last_snapshot(tmp_path):
    checkpoint_dir = tmp_path / "snapshots"
    command = [sys.executable, "-m", "tests.train.fit_in_subprocess", str(checkpoint_dir)]
    root = Path(__file__).parents[2]
    first = subprocess.Popen(command, cwd=root, env={**os.environ, "WORKBENCH_TEST_SLOW": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(step >= 70 for step in committed_steps(checkpoint_dir)):
            assert first.poll() is None, "the first fit ended before it could be killed"
            assert time.monotonic() < deadline, "no snapshot in the second epoch within 2 minutes"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the kernel and its local cluster die together
        first.wait()
    killed_at = max(committed_steps(checkpoint_dir))
    assert killed_at < EPOCHS * STEPS_PER_EPOCH

    second = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    outcome = json.loads(second.stdout.strip().splitlines()[-1])
    assert outcome["start_step"] == killed_at, "resumed from the last snapshot, not from scratch"
    assert outcome["step"] == EPOCHS * STEPS_PER_EPOCH
    assert outcome["epochs"] == list(range(EPOCHS)) and outcome["rows_not_once"] == [0] * EPOCHS


def test_beyond_max_failures_the_fit_stops_saying_how_to_resume(three_workers, tmp_path):
    killer = faults.KillAt(35, lambda estimator: estimator.workers_[2])
    estimator = faults.estimator()
    with pytest.raises(wb.train.TrainingFailed, match=r"max_failures=0.*resume=True") as caught:
        estimator.fit(faults.rows_with_ids(), epochs=EPOCHS, batch_size=faults.BATCH, snapshot_every=10,
                      checkpoint_dir=tmp_path, max_failures=0, log_every=1, callbacks=[killer], verbose=False)
    assert str(tmp_path) in str(caught.value)
    assert estimator.step_ == 30, "the estimator holds the last snapshot"
    assert list(estimator.history_.index) == [], "no epoch finished"
