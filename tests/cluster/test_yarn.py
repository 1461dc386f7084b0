"""YARN clusters (workbench.cluster.yarn) as far as they can be tested without a YARN ResourceManager.

No Hadoop can be installed here, and no fake YARN is written. What is tested for real: the skein
application built from ``wb.init``-style arguments (checked by skein's own classes and field by field),
the TLS files it ships, every bad value named, the fail-fast check of this machine, and the cluster's
scheduler side: a ``YarnCluster`` made with ``submit=False`` runs its scheduler, and the worker
service's own script is run the way a YARN NodeManager runs a container (the environment archive
unpacked as ``environment``, the other files copied next to it, the service's environment variables
and ``SKEIN_CONTAINER_ID`` set). Scaling and adapting containers, the remote scheduler's publication
of its address, restarts and YARN's logs need YARN and are not tested here.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import skein
from distributed import Scheduler, Security
from distributed.core import Status

import workbench as wb
from workbench.cluster import tls
from workbench.cluster.yarn import (SCHEDULER_SERVICE, WORKER_SERVICE, YarnCluster, application_spec,
                                    check_yarn_client)

from ..conftest import wait_for
from ..processes import stop_process

#: Everything the test's scheduler, workers and dashboards listen on stays on the loopback interface.
LOOPBACK_SCHEDULER = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
LOOPBACK_WORKER = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> Path:
    """An environment archive whose ``bin/activate`` activates this test's virtual environment
    (what a ``venv-pack`` archive of it would do once unpacked, without packing 2 GB)."""
    folder = tmp_path_factory.mktemp("environment")
    activate = folder / "bin" / "activate"
    activate.parent.mkdir()
    activate.write_text(f"source {Path(sys.prefix) / 'bin' / 'activate'}\n")
    archive = folder.parent / "environment.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(activate.parent, arcname="bin")
    return archive


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("certificates")
    tls.create_certificates(directory)
    return directory


def test_spec_from_init_arguments_is_a_valid_skein_application(environment):
    spec = application_spec(environment=str(environment), workers=3, worker_cores=2, worker_memory="1.5 GB",
                            queue="research", name="wb-test", deploy_mode="local", worker_env={"OMP_NUM_THREADS": "2"})

    for copy in (skein.ApplicationSpec.from_dict(spec.to_dict()), skein.ApplicationSpec.from_yaml(spec.to_yaml())):
        assert copy == spec
    assert (spec.name, spec.queue) == ("wb-test", "research")
    assert set(spec.services) == {WORKER_SERVICE}  # the scheduler runs in the submitting process
    worker = spec.services[WORKER_SERVICE]
    assert worker.instances == 3
    assert (worker.resources.vcores, worker.resources.memory) == (2, 1431)  # 1.5e9 bytes, rounded up to MiB
    assert worker.max_restarts == -1  # failed containers restart without limit
    assert worker.env == {"OMP_NUM_THREADS": "2"}
    assert set(worker.files) == {"environment"}
    assert worker.files["environment"].source == f"file://{environment}"
    assert worker.files["environment"].type == skein.model.FileType.ARCHIVE  # YARN unpacks it
    assert worker.script.splitlines()[:2] == ["set -e", "source environment/bin/activate"]
    assert 'skein kv get current --key dask.scheduler --wait' in worker.script
    assert ('exec dask worker "$scheduler" --name "$SKEIN_CONTAINER_ID" --nthreads 2 --memory-limit 1431MiB'
            in worker.script)
    assert not worker.depends


def test_remote_mode_adds_a_scheduler_service_that_publishes_its_address():
    spec = application_spec(environment="hdfs://namenode:8020/envs/team.tar.gz", workers=0, deploy_mode="remote")

    assert skein.ApplicationSpec.from_yaml(spec.to_yaml()) == spec
    scheduler, worker = spec.services[SCHEDULER_SERVICE], spec.services[WORKER_SERVICE]
    assert (scheduler.instances, scheduler.max_restarts) == (1, 0)
    assert scheduler.files["environment"].source == "hdfs://namenode:8020/envs/team.tar.gz"
    assert "exec dask scheduler --port 0 --dashboard-address :0 --preload workbench.cluster.yarn" in scheduler.script
    assert worker.instances == 0  # scaled later
    assert worker.depends == {SCHEDULER_SERVICE}
    assert (worker.resources.vcores, worker.resources.memory) == (1, 2048)  # the defaults: 1 core, 2 GiB


def test_tls_files_are_shipped_and_given_to_dask(environment, certificates):
    security = tls.security(certificates)
    spec = application_spec(environment=environment, workers=1, deploy_mode="remote", security=security)

    assert skein.ApplicationSpec.from_yaml(spec.to_yaml()) == spec
    files = tls.CertificateFiles.in_directory(certificates)
    worker, scheduler = spec.services[WORKER_SERVICE], spec.services[SCHEDULER_SERVICE]
    assert {name: f.source for name, f in worker.files.items() if name != "environment"} == {
        "tls-ca.pem": f"file://{files.ca}", "tls-worker.pem": f"file://{files.cert}",
        "tls-worker-key.pem": f"file://{files.key}"}
    assert {name: f.source for name, f in scheduler.files.items() if name != "environment"} == {
        "tls-ca.pem": f"file://{files.ca}", "tls-scheduler.pem": f"file://{files.cert}",
        "tls-scheduler-key.pem": f"file://{files.key}"}
    assert "--tls-ca-file tls-ca.pem --tls-cert tls-worker.pem --tls-key tls-worker-key.pem" in worker.script
    assert ("--protocol tls --tls-ca-file tls-ca.pem --tls-cert tls-scheduler.pem --tls-key tls-scheduler-key.pem"
            in scheduler.script)


def test_in_memory_certificates_cannot_be_shipped(environment):
    with pytest.raises(ValueError, match="security.tls_ca_file must name a certificate file"):
        application_spec(environment=environment, security=Security.temporary())


@pytest.mark.parametrize(("option", "value", "message"), [
    ("workers", -1, "workers must be an integer of at least 0"),
    ("workers", True, "workers must be an integer"),
    ("worker_cores", 0, "worker_cores must be an integer of at least 1"),
    ("worker_memory", "lots", "worker_memory must be a size"),
    ("worker_memory", 0, "worker_memory must be a size"),
    ("worker_restarts", -2, "worker_restarts must be an integer of at least -1"),
    ("deploy_mode", "cloud", "deploy_mode must be one of 'local', 'remote', got 'cloud'"),
    ("name", " ", "name must be a non-empty string"),
    ("queue", "", "queue must be a queue name"),
    ("worker_options", "--nthreads 4", "worker_options must be a list of strings"),
    ("worker_env", {"THREADS": 4}, "worker_env must map names to strings"),
    ("environment", "missing.tar.gz", "'missing.tar.gz': no such file"),
    ("environment", "env.tar.bz2", "'env.tar.bz2': it is not a .tar.gz/.tgz/.zip archive"),
    ("environment", "s3://bucket/env.tar.gz", "only local paths and hdfs:// URLs"),
])
def test_bad_values_are_named(environment, option, value, message):
    arguments = {"environment": environment, option: value}
    with pytest.raises(ValueError, match=re.escape(message)):
        application_spec(**arguments)
    with pytest.raises(ValueError, match=re.escape(message)):
        YarnCluster(**arguments)  # named before anything is started or checked


def test_without_hadoop_a_cluster_fails_fast_naming_what_is_missing(environment, monkeypatch, tmp_path):
    for name in ("HADOOP_CONF_DIR", "YARN_CONF_DIR", "HADOOP_HOME"):
        monkeypatch.delenv(name, raising=False)
    schedulers = set(Scheduler._instances)

    with pytest.raises(RuntimeError, match="lacks Hadoop's `yarn` command") as error:
        YarnCluster(environment=environment, workers=1)
    assert "no yarn-site.xml in /etc/hadoop/conf" in str(error.value)
    assert "skein" not in str(error.value) and "Java" not in str(error.value)  # both are installed here
    assert set(Scheduler._instances) == schedulers  # nothing started

    configuration = tmp_path / "hadoop-conf"
    configuration.mkdir()
    monkeypatch.setenv("HADOOP_CONF_DIR", str(configuration))
    with pytest.raises(RuntimeError, match=f"no yarn-site.xml in {configuration}"):
        check_yarn_client()
    (configuration / "yarn-site.xml").write_text("<configuration></configuration>\n")
    with pytest.raises(RuntimeError) as error:
        check_yarn_client()
    assert "`yarn` command" in str(error.value) and "yarn-site.xml" not in str(error.value)


def test_wb_init_yarn_checks_the_environment_archive_then_names_what_this_machine_lacks(environment, monkeypatch,
                                                                                      no_context):
    for name in ("HADOOP_CONF_DIR", "YARN_CONF_DIR", "HADOOP_HOME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=r"environment.tar.gz is not an archive of one Python environment"):
        wb.init("yarn", workers=2, environment=environment)  # refused before anything starts
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="lacks Hadoop's `yarn` command"):
        wb.init("yarn", workers=2, worker_cores=2, worker_memory="4 GiB")  # would pack this environment next
    assert time.monotonic() - started < 10 and wb.current() is None


def test_remote_mode_cannot_defer_submission(environment):
    with pytest.raises(ValueError, match="submit=False needs deploy_mode='local'"):
        YarnCluster(environment=environment, deploy_mode="remote", submit=False)


@pytest.fixture(params=["tcp", "tls"])
def protocol(request) -> str:
    return request.param


@pytest.fixture
def scheduler_only(environment, certificates, protocol) -> Iterator[YarnCluster]:
    """A YarnCluster that ran its scheduler and did not submit the application."""
    cluster = YarnCluster(environment=environment, worker_cores=1, worker_memory="1 GiB",
                          security=tls.security(certificates) if protocol == "tls" else None,
                          scheduler_options=LOOPBACK_SCHEDULER, worker_options=LOOPBACK_WORKER, submit=False)
    yield cluster
    cluster.close()


@pytest.fixture
def start_container(tmp_path) -> Iterator:
    """Runs a service's script as YARN runs one of its containers; stops those processes (by PID) at the end."""
    processes: list[subprocess.Popen] = []

    def start(service: skein.Service, container_id: str) -> subprocess.Popen:
        folder = tmp_path / container_id
        folder.mkdir()
        for target, file in service.files.items():
            source = Path(urlparse(file.source).path)
            if file.type == skein.model.FileType.ARCHIVE:
                with tarfile.open(source) as archive:
                    archive.extractall(folder / target, filter="data")
            else:
                shutil.copy(source, folder / target)
        log = (tmp_path / f"{container_id}.log").open("w")
        process = subprocess.Popen(["bash", "-c", service.script], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **service.env, "SKEIN_CONTAINER_ID": container_id})
        processes.append(process)
        return process

    yield start
    for process in processes:  # as a NodeManager stops a container: SIGTERM, then SIGKILL soon after
        stop_process(process, timeout=1)


def test_worker_containers_join_the_scheduler_of_this_process(scheduler_only, start_container, protocol,
                                                                certificates, no_context):
    cluster = scheduler_only
    address = cluster.scheduler_address
    assert address.startswith(f"{protocol}://127.0.0.1:")
    worker = cluster.spec.services[WORKER_SERVICE]
    assert worker.env["DASK_SCHEDULER_ADDRESS"] == address  # what the containers connect to

    for i in range(2):
        start_container(worker, f"{WORKER_SERVICE}_{i}")
    wait_for(lambda: len(cluster.scheduler_info["workers"]) == 2, "two worker containers to join", timeout=60)

    joined = sorted(cluster.scheduler_info["workers"].values(), key=lambda w: w["name"])
    assert [w["name"] for w in joined] == ["dask.worker_0", "dask.worker_1"]  # the container ids
    assert [(w["nthreads"], w["memory_limit"]) for w in joined] == [(1, 2**30)] * 2
    assert all(w["host"] == "127.0.0.1" for w in joined)
    assert cluster.dashboard_link.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(cluster.dashboard_link, timeout=10) as page:
        assert page.status == 200
    assert "Scheduler" in cluster.get_logs(workers=False)
    with pytest.raises(RuntimeError, match=r"not submitted yet: call submit\(\)"):
        cluster.scale(4)
    assert cluster.workers == {}  # no containers asked of YARN

    security = tls.security(certificates) if protocol == "tls" else None
    context = wb.init(cluster, security=security)  # adopted like any other Cluster
    assert sorted(w.name for w in context.workers) == ["dask.worker_0", "dask.worker_1"]
    assert context.client.submit(sum, [1, 2, 3]).result() == 6
    wb.stop()

    cluster.close()
    assert cluster.status == Status.closed
    host, port = address.split("://")[1].rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):  # the scheduler is gone
        socket.create_connection((host, int(port)), timeout=5).close()
