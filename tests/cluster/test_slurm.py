"""Dask workers as SLURM jobs (workbench.cluster.jobqueue) on a real SLURM cluster of this machine.

The cluster (munged, slurmctld, slurmd with a private configuration, see :mod:`.slurm`) is started
once for the module. The Dask scheduler, the workers and their dashboards listen on the loopback
interface only: ``interface="lo"`` is the knob a real cluster sets to its compute network, and the
dashboards, which listen on every interface by default, are told where to listen.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dask.config
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.cluster.jobqueue import JOB_NAME, batch_cluster
from workbench.context import scheduler_workers

from ..train.conftest import make_mlp
from .slurm import Job, Slurm, slurm_cluster

LOOPBACK = {
    "interface": "lo",
    "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
    "worker_extra_args": ["--dashboard-address", "127.0.0.1:0"],
}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[Slurm]:
    """A SLURM cluster whose commands (sbatch, squeue, scancel) the whole module talks to."""
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster, pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(cluster.conf))
        yield cluster


def our_jobs(slurm: Slurm) -> list[Job]:
    return [job for job in slurm.jobs() if job.name == JOB_NAME]


def wait_until_no_jobs(slurm: Slurm, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while jobs := our_jobs(slurm):
        assert time.monotonic() < deadline, f"jobs still queued {timeout:g} s after the cluster closed: {jobs}"
        time.sleep(0.1)


def test_two_slurm_jobs_train_a_model_and_are_cancelled_on_close(slurm, no_context, tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)  # 3 classes
    cluster = batch_cluster("slurm", workers=2, worker_cores=1, worker_memory="2 GiB", queue="debug",
                            walltime="00:10:00", timeout=60, log_directory=tmp_path / "logs", **LOOPBACK)
    try:
        jobs = our_jobs(slurm)
        assert [(job.state, job.cpus, job.memory) for job in jobs] == [("RUNNING", 1, "2G")] * 2

        context = wb.init(cluster=cluster)
        assert [(w.cores, w.memory) for w in context.workers] == [(1, 2 * 2**30)] * 2
        assert all(w.address.startswith("tcp://127.0.0.1:") for w in context.workers)
        job_of_worker = context.client.run(os.getenv, "SLURM_JOB_ID")
        assert sorted(job_of_worker.values()) == sorted(job.id for job in jobs)  # each worker runs in one of our jobs

        estimator = wb.Estimator.from_torch(make_mlp, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02},
                                            loss="cross_entropy", metrics=["accuracy"])
        history = estimator.fit((features, labels), epochs=4, batch_size=64, progress=None)
        assert sorted(estimator.workers_) == sorted(job_of_worker)  # trained on both SLURM workers
        assert history["loss"].iloc[-1] < history["loss"].iloc[0]
        predicted = estimator.predict(features).compute()
        assert predicted.shape == (len(features), 3)
        assert np.mean(np.argmax(predicted, axis=1) == labels) > 0.8

        context.close()  # an adopted cluster outlives the context...
        assert len(our_jobs(slurm)) == 2
    finally:
        cluster.close()  # ...and its jobs end with it
    wait_until_no_jobs(slurm)


def test_security_reaches_the_scheduler_and_the_worker_jobs(slurm, tmp_path):
    from distributed import Client, Security

    # a temporary certificate: the jobs read it from files in a folder they share with this process
    with batch_cluster("slurm", workers=1, security=Security.temporary(), shared_temp_directory=str(tmp_path),
                       timeout=60, log_directory=tmp_path / "logs", **LOOPBACK) as cluster:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        with Client(cluster) as client:
            assert [address.split(":")[0] for address in scheduler_workers(client)] == ["tls"]
            assert client.submit(os.getenv, "SLURM_JOB_ID").result() == our_jobs(slurm)[0].id
    wait_until_no_jobs(slurm)


def test_workers_that_never_join_time_out_quoting_the_queue_and_the_job_log(slurm, tmp_path):
    with pytest.raises(TimeoutError) as raised:
        batch_cluster("slurm", workers=1, python="/nonexistent/python3", timeout=3,
                      log_directory=tmp_path / "logs", **LOOPBACK)
    message = str(raised.value)
    assert "0 of 1 Dask workers joined within 3 s" in message
    assert "`squeue --jobs" in message
    assert "/nonexistent/python3: No such file or directory" in message  # the job's own error log
    wait_until_no_jobs(slurm)


def test_jobs_left_waiting_for_room_time_out_and_are_cancelled(slurm, tmp_path):
    # the node has 2 CPUs: the first 2-core job runs, the second waits in the queue for resources
    with pytest.raises(TimeoutError) as raised:
        batch_cluster("slurm", workers=2, worker_cores=2, timeout=3, log_directory=tmp_path / "logs", **LOOPBACK)
    message = str(raised.value)
    assert re.search(r"[01] of 2 Dask workers joined within 3 s", message)
    assert re.search(r" PD .*\(Resources\)", message), message  # squeue's view: pending, and why
    wait_until_no_jobs(slurm)  # the running job was cancelled too


def test_a_refused_submission_raises_sbatchs_error_at_once(slurm, tmp_path):
    started = time.monotonic()
    refusal = r"(?s)sbatch did not take the Dask worker jobs.*invalid partition specified: no-such-partition"
    with pytest.raises(RuntimeError, match=refusal):
        batch_cluster("slurm", workers=1, queue="no-such-partition", log_directory=tmp_path / "logs", **LOOPBACK)
    assert time.monotonic() - started < 10
    assert our_jobs(slurm) == []


@pytest.mark.parametrize("scheduler", ["pbs", "sge"])
def test_pbs_and_sge_name_a_missing_qsub(scheduler, tmp_path):
    if shutil.which("qsub"):
        pytest.skip("qsub is installed here; this checks the error where it is not")
    with pytest.raises(RuntimeError, match=r"qsub did not take the Dask worker jobs: .* No such file or directory: 'qsub'"):
        batch_cluster(scheduler, workers=1, log_directory=tmp_path / "logs", **LOOPBACK)


@pytest.mark.parametrize(
    ("scheduler", "arguments", "problem"),
    [
        ("lsf", {}, r"unknown batch scheduler 'lsf': expected one of 'slurm', 'pbs', 'sge'"),
        ("slurm", {"workers": 0}, r"workers must be a positive integer, got 0"),
        ("slurm", {"workers": 2.0}, r"workers must be a positive integer, got 2.0"),
        ("slurm", {"worker_cores": 0}, r"worker_cores must be a positive integer, got 0"),
        ("slurm", {"worker_memory": "lots"}, r"worker_memory must be a size such as '2 GiB' or a number of bytes, got 'lots'"),
        ("slurm", {"worker_memory": "0 GiB"}, r"worker_memory must be .* got '0 GiB'"),
        ("slurm", {"worker_memory": -1}, r"worker_memory must be .* got -1"),
        ("slurm", {"worker_memory": None}, r"worker_memory must be .* got None"),
        ("slurm", {"timeout": "soon"}, r"timeout must be a duration such as '2 minutes' or a number of seconds, got 'soon'"),
        ("slurm", {"timeout": 0}, r"timeout must be a duration .* got 0"),
    ],
)
def test_bad_arguments_are_named(scheduler, arguments, problem):
    with pytest.raises(ValueError, match=problem):
        batch_cluster(scheduler, **{"workers": 1, **arguments})


def test_an_unknown_option_is_named(tmp_path: Path):
    with pytest.raises(ValueError, match="unexpected keyword argument 'queues'"):
        batch_cluster("slurm", workers=1, queues="debug", log_directory=tmp_path / "logs", **LOOPBACK)


def test_wb_init_slurm_trains_on_worker_jobs_sized_by_config_and_stop_cancels_them(slurm, no_context, tmp_path):
    with dask.config.set({"workbench.worker-memory": "1 GiB", "workbench.queue": "debug"}):  # as the kernel sets
        context = wb.init("slurm", workers=2, walltime="00:10:00", log_directory=tmp_path / "logs", **LOOPBACK)
    try:
        assert context.kind == "slurm" and context.owns_cluster
        assert [(w.cores, w.memory) for w in context.workers] == [(1, 2**30)] * 2
        assert [(job.state, job.memory) for job in our_jobs(slurm)] == [("RUNNING", "1G")] * 2
        assert wb.init("slurm", workers=2) is context  # a re-run cell gets the same jobs
        rng = np.random.default_rng(1)
        features = rng.normal(size=(600, 4)).astype(np.float32)
        labels = (features[:, 0] > 0).astype(np.int64)
        estimator = wb.Estimator.from_torch(make_mlp, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02},
                                            loss="cross_entropy", metrics=["accuracy"])
        estimator.fit((features, labels), epochs=3, batch_size=64, progress=None)
        assert sorted(estimator.workers_) == sorted(w.address for w in context.workers)  # both jobs trained
        assert estimator.evaluate((features, labels))["accuracy"] > 0.8
    finally:
        wb.stop()
    wait_until_no_jobs(slurm)  # stop() cancelled the jobs Workbench submitted
