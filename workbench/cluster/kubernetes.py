"""Dask clusters on Kubernetes through the Dask operator (dask-kubernetes' ``KubeCluster``).

:func:`kube_cluster` creates a ``DaskCluster`` resource in a namespace of the Kubernetes cluster
that the current kubeconfig (or the pod's service account) points at; the Dask operator, which the
cluster's administrators install once, starts its scheduler and worker pods. The call returns once
every worker has joined, so ``wb.init(cluster=kube_cluster(...))`` gets a cluster ready to train on;
closing it deletes the resource and its pods.

Workbench writes the resource itself (:func:`cluster_spec`, built on dask-kubernetes'
``make_cluster_spec``) for three reasons: each worker books exactly ``worker_cores`` and
``worker_memory`` and runs that many threads with that memory limit; the image defaults to the Dask
image of the installed Dask and Python versions, since the workers unpickle what this process sends;
and the containers start ``dask scheduler`` / ``dask worker``, as Dask releases no longer install
the ``dask-scheduler`` command that dask-kubernetes' template starts. The Dask image has neither
PyTorch nor Workbench: give ``image=`` an image that has them (or ``env={"EXTRA_PIP_PACKAGES":
"..."}``, which the Dask images install at start).
"""

from __future__ import annotations

import getpass
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any

from workbench.arguments import check_positive_int, duration_seconds, memory_bytes

if TYPE_CHECKING:
    from dask_kubernetes.operator import KubeCluster

__all__ = ["cluster_spec", "default_image", "kube_cluster"]

#: KubeCluster arguments that shape the cluster resource, which Workbench writes: what to use instead.
_SPEC_ARGUMENTS = {
    "n_workers": "workers=",
    "resources": "worker_cores= and worker_memory=",
    "worker_command": "cluster_spec() and KubeCluster(custom_cluster_spec=...)",
    "custom_cluster_spec": "dask_kubernetes.operator.KubeCluster directly",
    "idle_timeout": "cluster_spec() and KubeCluster(custom_cluster_spec=...)",
    "jupyter": "cluster_spec() and KubeCluster(custom_cluster_spec=...)",
}


def default_image() -> str:
    """The Dask image of the Dask and Python versions of this process, e.g.
    ``ghcr.io/dask/dask:2026.8.0-py3.11``."""
    import dask

    return f"ghcr.io/dask/dask:{dask.__version__}-py{sys.version_info.major}.{sys.version_info.minor}"


def cluster_spec(
    *,
    workers: int,
    worker_cores: int,
    worker_memory: str | int,
    image: str | None = None,
    name: str | None = None,
    env: dict[str, str] | None = None,
    scheduler_service_type: str = "ClusterIP",
) -> dict[str, Any]:
    """The ``DaskCluster`` resource :func:`kube_cluster` creates, as a dict (edit it and pass it to
    ``KubeCluster(custom_cluster_spec=...)`` for what the arguments do not cover).

    Args:
        workers: worker pods.
        worker_cores: CPUs each worker pod requests and is limited to, and threads its worker runs.
        worker_memory: memory each worker pod requests and is limited to, and its worker's memory
            limit: a size such as ``"4 GiB"`` or a number of bytes.
        image: the container image of the scheduler and the workers (default :func:`default_image`).
        name: the resource's name (default ``workbench-<user>-<random>``), a lowercase DNS name.
        env: environment variables of the scheduler and worker containers.
        scheduler_service_type: how the scheduler is exposed: ``"ClusterIP"`` (inside the
            Kubernetes cluster; KubeCluster forwards a port to it from outside), ``"NodePort"`` or
            ``"LoadBalancer"``.
    """
    from dask_kubernetes.exceptions import ValidationError
    from dask_kubernetes.operator import make_cluster_spec
    from dask_kubernetes.operator.validation import validate_cluster_name

    check_positive_int("workers", workers)
    check_positive_int("worker_cores", worker_cores)
    memory = memory_bytes("worker_memory", worker_memory)
    name = name if name is not None else _default_name()
    try:
        validate_cluster_name(name)
    except ValidationError as error:  # its message is not in str(error)
        raise ValueError(error.message) from None
    quantity = {"cpu": str(worker_cores), "memory": _quantity(memory)}
    spec = make_cluster_spec(
        name=name,
        image=image or default_image(),
        n_workers=workers,
        resources={"requests": quantity, "limits": dict(quantity)},
        env=env,
        worker_command=["dask", "worker", "--nthreads", str(worker_cores), "--memory-limit", str(memory)],
        scheduler_service_type=scheduler_service_type,
    )
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    scheduler["args"] = ["dask", "scheduler", *scheduler["args"][1:]]  # the template starts dask-scheduler
    return spec


def kube_cluster(
    *,
    workers: int,
    worker_cores: int,
    worker_memory: str | int,
    image: str | None = None,
    namespace: str | None = None,
    env: dict[str, str] | None = None,
    timeout: str | float = "5 minutes",
    **options: Any,
) -> KubeCluster:
    """A Dask cluster of ``workers`` pods on Kubernetes, returned once they all joined.

    Args:
        workers, worker_cores, worker_memory, image, env: as in :func:`cluster_spec`.
        namespace: the Kubernetes namespace (default: the kubeconfig's current one).
        timeout: how long to wait for the workers to join (pulling an image can take minutes).
        options: passed on to ``KubeCluster``: ``name``, ``scheduler_service_type`` (both go to
            :func:`cluster_spec`), ``port_forward_cluster_ip``, ``shutdown_on_close``,
            ``resource_timeout`` and the others it documents.

    Raises:
        ValueError: a bad count, size, duration or name, or a KubeCluster argument that shapes the
            cluster resource (the message says what to use instead).
        ConnectionError: no Kubernetes credentials were found (no kubeconfig, not in a pod).
        TimeoutError: not every worker joined within ``timeout``; the cluster is deleted.
    """
    shaping = sorted(set(options) & set(_SPEC_ARGUMENTS))
    if shaping:
        raise ValueError(
            f"kube_cluster writes the cluster resource itself: instead of {', '.join(shaping)}, use "
            + "; ".join(f"{_SPEC_ARGUMENTS[argument]} for {argument}" for argument in shaping)
        )
    seconds = duration_seconds("timeout", timeout)
    spec = cluster_spec(
        workers=workers, worker_cores=worker_cores, worker_memory=worker_memory, image=image, env=env,
        name=options.pop("name", None),
        scheduler_service_type=options.pop("scheduler_service_type", "ClusterIP"),
    )
    _check_credentials()
    from dask_kubernetes.operator import KubeCluster
    from distributed.exceptions import WorkerStartTimeoutError

    cluster = KubeCluster(custom_cluster_spec=spec, namespace=namespace, **options)
    try:
        cluster.wait_for_workers(workers, timeout=seconds)
    except WorkerStartTimeoutError as error:
        cluster.close()
        raise TimeoutError(
            f"{error.available_workers} of {workers} Dask workers joined within {seconds:g} s "
            f"(`kubectl describe pods -l dask.org/cluster-name={spec['metadata']['name']}` says why "
            "the others did not start); the cluster was deleted"
        ) from error
    except BaseException:
        cluster.close()
        raise
    return cluster


def _check_credentials() -> None:
    """Refuse clearly, before a KubeCluster exists, where kr8s finds no Kubernetes credentials.

    (A KubeCluster that failed to start is still reaped when Python exits, which then fails again.)
    """
    import kr8s

    try:
        kr8s.api()
    except ValueError as error:
        raise ConnectionError(
            f"no Kubernetes cluster to run on ({error}): kube_cluster uses the kubeconfig ($KUBECONFIG, "
            "else ~/.kube/config) or, inside a pod, its service account"
        ) from error


def _default_name() -> str:
    """``workbench-<user>-<random>``, the user name reduced to what a Kubernetes name allows."""
    user = re.sub(r"[^a-z0-9-]+", "-", getpass.getuser().lower()).strip("-") or "user"
    return f"workbench-{user[:20]}-{uuid.uuid4().hex[:8]}"


def _quantity(nbytes: int) -> str:
    """Bytes as a Kubernetes quantity, in the largest binary unit that holds them exactly."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return str(nbytes)
