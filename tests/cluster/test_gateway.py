"""Dask clusters from a dask-gateway (workbench.cluster.gateway) and on Kubernetes
(workbench.cluster.kubernetes).

The gateway is a real ``dask-gateway-server`` (see :mod:`.gateway_server`) started once for the
module on 127.0.0.1, with password authentication and its local backend: the clusters it starts are
scheduler and worker processes of this machine behind its TLS proxy. There is no Kubernetes here:
the Kubernetes tests check the cluster resource Workbench writes (through dask-kubernetes' own
``make_cluster_spec``) and the errors raised before any Kubernetes is contacted; creating the
resource, the operator starting pods and the wait for their workers are not exercised.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.cluster.gateway import gateway_address, gateway_cluster
from workbench.cluster.kubernetes import cluster_spec, default_image, kube_cluster

from ..browser import free_port
from ..train.conftest import make_mlp
from .gateway_server import MAX_WORKERS, GatewayServer, gateway_server

USER = "alice"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayServer]:
    with gateway_server(tmp_path_factory.mktemp("gateway"), password="correct horse") as server:
        yield server


def login(gateway: GatewayServer, password: str | None = None):
    from dask_gateway import BasicAuth

    return BasicAuth(USER, gateway.password if password is None else password)


def listed_clusters(gateway: GatewayServer) -> list[str]:
    """The names of the user's pending and running clusters, as the gateway lists them."""
    from dask_gateway import Gateway

    with Gateway(gateway.http_address, auth=login(gateway)) as client:
        return [report.name for report in client.list_clusters()]


def test_two_gateway_workers_train_a_model_and_close_shuts_the_cluster_down(gateway, no_context):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)  # 3 classes
    cluster = gateway_cluster(gateway.url, workers=2, worker_cores=2, worker_memory="1.5 GiB",
                              auth=login(gateway), timeout=60)
    try:
        assert listed_clusters(gateway) == [cluster.name]
        context = wb.init(cluster=cluster)
        # the cluster options reached the gateway: 2 threads and 1.5 GiB per worker
        assert [(w.cores, w.memory) for w in context.workers] == [(2, 3 * 2**29)] * 2
        assert all(w.address.startswith("tls://127.0.0.1:") for w in context.workers)

        estimator = wb.Estimator.from_torch(make_mlp, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02},
                                            loss="cross_entropy", metrics=["accuracy"])
        history = estimator.fit((features, labels), epochs=4, batch_size=64, progress=None)
        assert sorted(estimator.workers_) == sorted(w.address for w in context.workers)  # both trained
        assert history["loss"].iloc[-1] < history["loss"].iloc[0]
        predicted = estimator.predict(features).compute()
        assert predicted.shape == (len(features), 3)
        assert np.mean(np.argmax(predicted, axis=1) == labels) > 0.8

        context.close()  # an adopted cluster outlives the context...
        assert listed_clusters(gateway) == [cluster.name]
    finally:
        cluster.close()  # ...and is shut down on the gateway with it
    assert listed_clusters(gateway) == []


def test_wb_init_with_a_gateway_url_asks_it_for_a_cluster_that_stop_shuts_down(gateway, no_context):
    context = wb.init(gateway.url, workers=1, worker_memory="1 GiB", auth=login(gateway), timeout=60)
    try:
        assert context.kind == "gateway" and context.owns_cluster
        assert [w.memory for w in context.workers] == [2**30]
        assert listed_clusters(gateway) == [context.cluster.name]
        assert wb.init(gateway.url, workers=1) is context  # a re-run cell gets the same cluster
    finally:
        wb.stop()
    assert listed_clusters(gateway) == []
    with pytest.raises(ValueError, match="queue do not apply here: size gateway workers"):
        wb.init(gateway.url, workers=1, queue="gpu")


def test_more_workers_than_the_gateway_allows_are_refused_and_the_cluster_shut_down(gateway):
    with pytest.raises(ValueError, match=rf"refused {MAX_WORKERS + 1} workers: .* Scaling to {MAX_WORKERS} instead"):
        gateway_cluster(gateway.url, workers=MAX_WORKERS + 1, auth=login(gateway), timeout=30)
    assert listed_clusters(gateway) == []


def test_a_cluster_not_ready_within_the_timeout_is_shut_down(gateway):
    started = time.monotonic()
    # starting a scheduler and two worker processes takes seconds
    with pytest.raises(TimeoutError, match=r"did not start the cluster \w+ within 0.5 s|of 2 Dask workers joined"):
        gateway_cluster(gateway.url, workers=2, auth=login(gateway), timeout=0.5)
    assert time.monotonic() - started < 10
    assert listed_clusters(gateway) == []


def test_a_wrong_password_is_refused(gateway):
    with pytest.raises(PermissionError, match=rf"the dask-gateway at {gateway.http_address} refused the credentials "
                                              r"\(HTTP 401 Unauthorized\)"):
        gateway_cluster(gateway.url, workers=1, auth=login(gateway, password="wrong"))
    assert listed_clusters(gateway) == []


def test_an_unreachable_gateway_is_named():
    port = free_port()  # nothing listens there
    with pytest.raises(ConnectionError, match=rf"could not reach the dask-gateway at http://127.0.0.1:{port} "):
        gateway_cluster(f"gateway://127.0.0.1:{port}", workers=1, auth="simple")


def test_an_option_the_gateway_does_not_expose_is_refused_listing_those_it_does(gateway):
    with pytest.raises(ValueError, match=r"has no cluster option 'image'; it exposes: worker_cores, worker_memory"):
        gateway_cluster(gateway.url, workers=1, auth=login(gateway), image="ghcr.io/dask/dask")
    with pytest.raises(ValueError, match=r"cluster option worker_cores does not take 3: worker_cores must be <= 2"):
        gateway_cluster(gateway.url, workers=1, auth=login(gateway), worker_cores=3)
    assert listed_clusters(gateway) == []  # nothing was started


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("gateway://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("gateway+http://gw.example.org:80/", "http://gw.example.org:80"),
        ("GATEWAY+HTTPS://gw.example.org/services/dask-gateway/", "https://gw.example.org/services/dask-gateway"),
    ],
)
def test_gateway_urls_name_the_gateways_http_address(url, address):
    assert gateway_address(url) == address


@pytest.mark.parametrize(
    ("url", "arguments", "problem"),
    [
        ("tcp://127.0.0.1:8786", {}, r"not a dask-gateway URL: 'tcp://127.0.0.1:8786'; expected gateway://host:port"),
        ("gateway://", {}, r"not a dask-gateway URL: 'gateway://'"),
        ("gateway://host:port", {}, r"not a dask-gateway URL: 'gateway://host:port': Port could not be cast"),
        ("gateway://127.0.0.1:1", {"workers": 0}, r"workers must be a positive integer, got 0"),
        ("gateway://127.0.0.1:1", {"worker_cores": 1.5}, r"worker_cores must be a positive integer, got 1.5"),
        ("gateway://127.0.0.1:1", {"worker_memory": "lots"}, r"worker_memory must be a size such as '2 GiB'"),
        ("gateway://127.0.0.1:1", {"timeout": "soon"}, r"timeout must be a duration such as '2 minutes'"),
        ("gateway://127.0.0.1:1", {"auth": "oauth"},
         r"unknown dask-gateway authentication 'oauth': expected one of 'simple', 'basic', 'kerberos', 'jupyterhub'"),
    ],
)
def test_bad_arguments_are_named_before_the_gateway_is_contacted(url, arguments, problem):
    with pytest.raises(ValueError, match=problem):
        gateway_cluster(url, **arguments)


def test_the_kubernetes_cluster_resource_books_what_each_worker_runs():
    spec = cluster_spec(workers=3, worker_cores=2, worker_memory="1.5 GiB", name="training", env={"A": "1"})
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["name"] == "training"
    worker_group = spec["spec"]["worker"]
    assert worker_group["replicas"] == 3
    (worker,) = worker_group["spec"]["containers"]
    booked = {"cpu": "2", "memory": "1536Mi"}
    assert worker["resources"] == {"requests": booked, "limits": booked}
    assert worker["args"][:6] == ["dask", "worker", "--nthreads", "2", "--memory-limit", str(3 * 2**29)]
    assert worker["env"] == [{"name": "A", "value": "1"}]
    (scheduler,) = spec["spec"]["scheduler"]["spec"]["containers"]
    assert scheduler["args"][:2] == ["dask", "scheduler"]  # dask-scheduler is gone from Dask releases
    assert worker["image"] == scheduler["image"] == default_image()
    import dask

    assert default_image() == f"ghcr.io/dask/dask:{dask.__version__}-py3.11"


def test_the_kubernetes_cluster_name_defaults_to_a_valid_unique_one():
    names = {cluster_spec(workers=1, worker_cores=1, worker_memory=2**30)["metadata"]["name"] for _ in range(2)}
    assert len(names) == 2 and all(name.startswith("workbench-") for name in names)


@pytest.mark.parametrize(
    ("arguments", "error", "problem"),
    [
        ({"workers": 0}, ValueError, r"workers must be a positive integer, got 0"),
        ({"worker_memory": "0 GiB"}, ValueError, r"worker_memory must be a size such as '2 GiB'"),
        ({"name": "Training_1"}, ValueError, r"The DaskCluster Training_1 is invalid: a lowercase RFC 1123"),
        ({"n_workers": 4}, ValueError, r"instead of n_workers, use workers= for n_workers"),
        ({"resources": {}}, ValueError, r"use worker_cores= and worker_memory= for resources"),
        ({"timeout": "soon"}, ValueError, r"timeout must be a duration"),
    ],
)
def test_bad_kubernetes_arguments_are_named(arguments, error, problem):
    with pytest.raises(error, match=problem):
        kube_cluster(**{"workers": 1, "worker_cores": 1, "worker_memory": "1 GiB", **arguments})


def test_no_kubernetes_credentials_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConnectionError, match=r"no Kubernetes cluster to run on .*kubeconfig"):
        kube_cluster(workers=1, worker_cores=1, worker_memory="1 GiB")


def test_wb_init_kubernetes_asks_for_worker_pods_and_names_missing_credentials(monkeypatch, tmp_path, no_context):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConnectionError, match=r"no Kubernetes cluster to run on"):
        wb.init("kubernetes", workers=2, worker_memory="4 GiB", image="registry.example/workbench:1")
    assert wb.current() is None
