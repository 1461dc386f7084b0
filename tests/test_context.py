"""wb.init / wb.stop against real Dask scheduler and worker processes."""

from __future__ import annotations

import os
import socket
import urllib.request

import dask.config
import pytest
from distributed import Client, LocalCluster

import workbench as wb

pytestmark = pytest.mark.usefixtures("no_context")


@pytest.fixture
def external_cluster():
    """A cluster started outside Workbench (one worker process)."""
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster:
        yield cluster


def test_default_is_a_local_cluster_of_worker_processes():
    from dask.system import CPU_COUNT

    ctx = wb.init()
    assert ctx.kind == "local" and ctx.owns_cluster
    workers = ctx.workers
    assert len(workers) == CPU_COUNT
    assert all(w.cores == 1 and w.memory > 0 for w in workers)
    worker_pids = ctx.client.run(os.getpid)
    assert len(set(worker_pids.values())) == CPU_COUNT and os.getpid() not in worker_pids.values()

    with urllib.request.urlopen(ctx.dashboard_link, timeout=30) as response:
        assert response.status == 200
    html = ctx._repr_html_()
    assert ctx.scheduler_address in html and ctx.dashboard_link in html
    assert all(w.address in html for w in workers)

    assert wb.init() is ctx, "a second init() returns the live context"
    assert wb.current() is ctx
    cluster = ctx.cluster
    wb.stop()
    assert ctx.closed and wb.current() is None
    assert cluster.status.name == "closed", "stop() closes a cluster Workbench started"


def test_local_options_and_context_manager():
    with wb.init(workers=1, threads_per_worker=2, memory_limit="1 GiB") as ctx:
        (worker,) = ctx.workers
        assert worker.cores == 2 and worker.memory == 2**30
        assert ctx.client.submit(sum, [1, 2, 3]).result() == 6
    assert ctx.closed and wb.current() is None


def test_adopted_cluster_is_left_running(external_cluster):
    ctx = wb.init(cluster=external_cluster)
    assert ctx.kind == "LocalCluster" and not ctx.owns_cluster
    assert len(ctx.workers) == 1
    wb.stop()
    assert external_cluster.status.name == "running"
    with Client(external_cluster) as client:
        assert client.submit(lambda: 42).result() == 42


@pytest.mark.parametrize("source", ["argument", "bare-argument", "environment", "dask-config"])
def test_address_from_argument_environment_or_config(external_cluster, monkeypatch, source):
    address = external_cluster.scheduler_address
    if source == "argument":
        ctx = wb.init(cluster=address)
    elif source == "bare-argument":
        ctx = wb.init(cluster=address.removeprefix("tcp://"))
    elif source == "environment":
        monkeypatch.setenv("WORKBENCH_CLUSTER", address)
        ctx = wb.init()
    else:
        with dask.config.set({"workbench.cluster": address}):
            ctx = wb.init()
    assert ctx.kind == "address" and ctx.scheduler_address == address
    assert [w.address for w in ctx.workers] == list(external_cluster.scheduler_info["workers"])
    wb.stop()
    assert external_cluster.status.name == "running", "stop() leaves a cluster it connected to"


def test_unknown_cluster_names_are_refused(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown cluster 'mesos://x'.*expected 'local'"):
        wb.init(cluster="mesos://x")
    monkeypatch.setenv("WORKBENCH_CLUSTER", "my-laptop")
    with pytest.raises(ValueError, match=r"unknown cluster 'my-laptop' \(from \$WORKBENCH_CLUSTER\)"):
        wb.init()
    with pytest.raises(TypeError, match="cluster must be a string"):
        wb.init(cluster=8786)


def test_unreachable_scheduler_fails_fast_naming_the_address():
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(ConnectionError, match=f"no Dask scheduler at {address}|could not reach a Dask scheduler at {address}"):
        wb.init(cluster=address, timeout=1)
    assert wb.current() is None


@pytest.mark.parametrize(
    "options, message",
    [
        ({"workers": 0}, "workers must be a positive integer"),
        ({"workers": -2}, "workers must be a positive integer"),
        ({"workers": 1.5}, "workers must be a positive integer"),
        ({"workers": True}, "workers must be a positive integer"),
        ({"workers": "2"}, "workers must be a positive integer"),
        ({"threads_per_worker": 0}, "threads_per_worker must be a positive integer"),
        ({"memory_limit": "lots"}, "memory_limit must be"),
        ({"memory_limit": -5}, "memory_limit must be"),
        ({"memory_limit": "0 B"}, "memory_limit must be"),
    ],
)
def test_bad_local_options(options, message):
    with pytest.raises(ValueError, match=message):
        wb.init(**options)
    assert wb.current() is None


def test_local_options_with_a_remote_cluster_are_refused(external_cluster):
    with pytest.raises(ValueError, match="workers do not apply here: size the cluster .* where it is launched"):
        wb.init(cluster=external_cluster.scheduler_address, workers=4)


@pytest.mark.parametrize(
    ("cluster", "options", "message"),
    [
        ("local", {"worker_cores": 2}, "worker_cores do not apply here: the local cluster takes workers, "),
        ("local", {"walltime": "01:00:00"}, "walltime do not apply here"),
        ("slurm", {"workers": 2, "memory_limit": "2 GiB"}, "memory_limit do not apply here: size slurm workers "
                                                           "with worker_cores and worker_memory"),
        ("kubernetes", {"workers": 2, "queue": "gpu"}, "queue do not apply here: size kubernetes workers"),
        ("tcp://127.0.0.1:1", {"queue": "gpu"}, "queue do not apply here"),
    ],
)
def test_options_for_another_kind_of_cluster_are_named(cluster, options, message):
    with pytest.raises(ValueError, match=message):
        wb.init(cluster, **options)
    assert wb.current() is None


def test_a_batch_cluster_needs_a_number_of_worker_jobs():
    with pytest.raises(ValueError, match=r"wb.init\(cluster='pbs'\) needs workers=N"):
        wb.init("PBS")


def test_init_while_live_returns_it_for_the_same_settings_and_refuses_others():
    ctx = wb.init(workers=1)
    assert wb.init(workers=1) is ctx, "a re-run notebook cell gets the same context"
    assert wb.init("local") is ctx and wb.init() is ctx
    with pytest.raises(RuntimeError, match=r"already running .*other settings than \{'workers': 2\}"):
        wb.init(workers=2)
    with pytest.raises(RuntimeError, match="already running"):
        wb.init(cluster="tcp://127.0.0.1:8786")
