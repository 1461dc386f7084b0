"""TLS for every scheduler, worker and client connection, checked with real TLS handshakes.

Two certificate directories are made by the same helper: ``certificates`` (the cluster's) and
``other_certificates`` (another team's CA). Listeners are probed with Python's own ``ssl`` client,
which also checks the server certificate's IP name, so a refusal is the server's TLS alert.
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dask.config
import numpy as np
import pytest
import torch
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from distributed import Client, LocalCluster, Security

import workbench as wb
from workbench.cluster import tls
from workbench.cluster.tls import CertificateFiles

from ..conftest import command_line_cluster

WORKBENCH = [sys.executable, "-m", "workbench.cli"]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> CertificateFiles:
    return tls.create_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def other_certificates(tmp_path_factory) -> CertificateFiles:
    return tls.create_certificates(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture
def tls_context(_module_cluster, certificates, monkeypatch) -> wb.Context:
    """A 2-worker local context made TLS by the dask config key, shared by consecutive tests."""
    monkeypatch.delenv("WORKBENCH_CLUSTER", raising=False)
    ctx = wb.current()
    if ctx is None or ctx.settings.get("security") != certificates.ca.parent:
        wb.stop()
        with dask.config.set({"workbench.security": str(certificates.ca.parent)}):
            ctx = wb.init(workers=2)
    return ctx


def server_answer(address: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> str:
    """Connect to the listener at ``address`` as a TLS client that trusts ``ca`` and presents ``cert``.

    Returns "accepted" when the server starts talking Dask, else the reason of the TLS alert it sent.
    The server certificate must name the address's IP (Python checks the host name; Dask does not).
    """
    host, port = address.removeprefix("tls://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host) as connection:
            try:  # under TLS 1.3 the server judges the client certificate after the client's handshake
                return "accepted" if connection.recv(1) else "closed"
            except ssl.SSLError as error:
                return error.reason


def train_and_predict(ctx: wb.Context) -> None:
    """Fit a tiny MLP on every worker of ``ctx``, then predict with it on the workers."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(600, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)
    estimator = wb.Estimator.from_torch(
        lambda: torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)),
        optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02}, loss="cross_entropy", metrics=["accuracy"])
    history = estimator.fit((features, labels), epochs=3, batch_size=64, progress=None)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert sorted(estimator.workers_) == sorted(w.address for w in ctx.workers)

    predicted = np.asarray(estimator.predict(features).compute())
    with torch.no_grad():
        expected = estimator.model_(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    assert estimator.evaluate((features, labels))["accuracy"] > 0.5  # three classes: chance is below 0.45


def test_a_tls_local_cluster_encrypts_every_listener_and_trains(tls_context, certificates, other_certificates):
    ctx = tls_context
    assert ctx.scheduler_address.startswith("tls://")
    assert ctx.security.require_encryption and ctx.security.tls_ca_file == str(certificates.ca)
    workers = wb.context.scheduler_workers(ctx.client)
    listeners = [ctx.scheduler_address, *workers, *(w["nanny"] for w in workers.values())]
    assert len(listeners) == 5
    for address in listeners:
        assert address.startswith("tls://")
        assert server_answer(address, certificates.ca, certificates.cert, certificates.key) == "accepted", address

    train_and_predict(ctx)

    assert wb.init(security=str(certificates.ca.parent)) is ctx  # the same setting, given as an argument
    with pytest.raises(RuntimeError, match="already running"):
        wb.init(security=other_certificates.ca.parent)


def test_a_plain_tcp_client_is_refused(tls_context):
    plain = "tcp://" + tls_context.scheduler_address.removeprefix("tls://")
    with pytest.raises(OSError):
        Client(plain, timeout=2, set_as_default=False)
    assert len(tls_context.workers) == 2  # the scheduler is still serving its TLS clients


def test_a_client_with_a_certificate_from_another_ca_is_refused(tls_context, certificates, other_certificates):
    address = tls_context.scheduler_address
    # trusting the cluster's CA, so only the server can refuse, for the client certificate it sent
    answer = server_answer(address, certificates.ca, other_certificates.cert, other_certificates.key)
    assert answer == "TLSV1_ALERT_UNKNOWN_CA"
    with pytest.raises(OSError, match="TLS certificate does not match"):
        Client(address, security=tls.security(other_certificates.ca.parent), timeout=2, set_as_default=False)


def test_a_client_with_the_ca_but_no_certificate_is_refused(tls_context, certificates):
    assert server_answer(tls_context.scheduler_address, certificates.ca) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"


def test_an_adopted_tls_cluster_is_used_with_its_own_security(no_context, certificates, other_certificates):
    with LocalCluster(n_workers=1, processes=False, protocol="tls://", host="127.0.0.1", dashboard_address=None,
                      security=tls.security(certificates.ca.parent)) as cluster:
        ctx = wb.init(cluster)
        assert ctx.security is cluster.security
        assert ctx.client.submit(sum, [1, 2]).result() == 3
        wb.stop()
        with pytest.raises(OSError, match="TLS certificate does not match"):
            wb.init(cluster, security=other_certificates.ca.parent, timeout=2)


@pytest.fixture
def tls_cli_cluster(certificates, tmp_path) -> Iterator[str]:
    """A scheduler and two workers started by the `dask` command line with the certificates; yields
    the scheduler's address."""
    with command_line_cluster(tmp_path, *certificates.dask_cli_options(), protocol="tls",
                              log=tmp_path / "dask.log") as (address, _):
        yield address


def test_a_command_line_tls_cluster_is_joined_with_the_certificate_directory(no_context, tls_cli_cluster, certificates):
    address = tls_cli_cluster
    assert address.startswith("tls://")
    with pytest.raises(ValueError, match="speaks TLS: pass security="):
        wb.init(address)
    ctx = wb.init(address, security=certificates.ca.parent, timeout=30)
    ctx.client.wait_for_workers(2, timeout=60)
    assert all(w.address.startswith("tls://") for w in ctx.workers)
    train_and_predict(ctx)
    wb.stop()

    distributed_tls = {"ca-file": str(certificates.ca), "client.cert": str(certificates.cert),
                       "client.key": str(certificates.key)}
    with dask.config.set({f"distributed.comm.tls.{key}": value for key, value in distributed_tls.items()}):
        assert len(wb.init(address).workers) == 2  # distributed's own TLS config is enough too


def test_bad_security_settings_are_named(no_context, certificates, tmp_path):
    with pytest.raises(TypeError, match="security \\(security argument\\) must be a certificate directory"):
        wb.init(security=42)
    with dask.config.set({"workbench.security": 42}):
        with pytest.raises(TypeError, match="dask config workbench.security"):
            wb.init()
    with pytest.raises(FileNotFoundError, match=f"no certificate directory {tmp_path / 'missing'}"):
        wb.init(security=tmp_path / "missing")
    with pytest.raises(ValueError, match="TLS is required .* but tcp://127.0.0.1:8786 is not a tls:// address"):
        wb.init("tcp://127.0.0.1:8786", security=certificates.ca.parent)
    assert wb.current() is None


def test_security_names_the_file_that_is_wrong(certificates, other_certificates, tmp_path):
    node_files = tmp_path / "node-files"  # what a worker machine gets: no CA key
    node_files.mkdir()
    for path in certificates.for_nodes:
        shutil.copy(path, node_files)
    security = tls.security(node_files)
    assert isinstance(security, Security) and security.require_encryption
    for role in ("client", "scheduler", "worker"):
        assert security.get_tls_config_for_role(role) == {
            "ca_file": str(node_files / "ca.pem"), "ciphers": None,
            "cert": str(node_files / "node.pem"), "key": str(node_files / "node-key.pem")}

    (node_files / "node-key.pem").unlink()
    with pytest.raises(FileNotFoundError, match=f"{node_files} lacks node-key.pem"):
        tls.security(node_files)
    shutil.copy(other_certificates.key, node_files / "node-key.pem")
    with pytest.raises(ValueError, match="node-key.pem is not the key of .*node.pem"):
        tls.security(node_files)
    shutil.copy(other_certificates.cert, node_files / "node.pem")  # cert and key agree, the CA does not
    with pytest.raises(ValueError, match="node.pem was not signed by .*ca.pem"):
        tls.security(node_files)
    (node_files / "ca.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="ca.pem is not a PEM certificate"):
        tls.security(node_files)

    expired = tmp_path / "expired"
    shutil.copytree(certificates.ca.parent, expired)
    resign_expired(CertificateFiles.in_directory(expired))
    with pytest.raises(ValueError, match="node.pem is valid from .* UTC, not now"):
        tls.security(expired)


def resign_expired(files: CertificateFiles) -> None:
    """Replace the node certificate by one the same CA signed, which expired yesterday."""
    node = x509.load_pem_x509_certificate(files.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(node.subject).issuer_name(ca.subject)
               .public_key(node.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=1)))
    expired = builder.sign(ca_key, hashes.SHA256())
    files.cert.write_bytes(expired.public_bytes(serialization.Encoding.PEM))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(WORKBENCH + list(args), capture_output=True, text=True, timeout=60)


def test_tls_create_writes_a_ca_and_a_server_and_client_certificate(tmp_path):
    directory = tmp_path / "certs"
    result = run("tls", "create", str(directory), "--host", "10.1.2.3", "scheduler.example.org", "--host", "::1",
                 "--days", "30")
    assert result.returncode == 0, result.stderr
    files = CertificateFiles.in_directory(directory)
    assert f"dask scheduler --tls-ca-file {files.ca}" in result.stdout
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()}
    assert modes == {"ca.pem": 0o644, "ca-key.pem": 0o600, "node.pem": 0o644, "node-key.pem": 0o600}

    node = x509.load_pem_x509_certificate(files.cert.read_bytes())
    names = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3", "::1"]
    assert names.get_values_for_type(x509.DNSName) == ["scheduler.example.org"]
    lifetime = node.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(days=29) < lifetime <= datetime.timedelta(days=30)
    for purpose in ("sslserver", "sslclient"):  # OpenSSL's own verdict on the chain and the key usages
        verified = subprocess.run(["openssl", "verify", "-CAfile", str(files.ca), "-purpose", purpose, str(files.cert)],
                                  capture_output=True, text=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    refused = run("tls", "create", str(directory))
    assert refused.returncode == 2 and "already exist" in refused.stderr and "--force" in refused.stderr
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before

    os.chmod(files.key, 0o644)
    assert run("tls", "create", str(directory), "--force").returncode == 0
    assert files.ca.read_bytes() != before["ca.pem"]  # a new CA
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


@pytest.mark.parametrize("args, message", [
    (["--host", "not a host"], "host 'not a host' is neither an IP address nor a host name"),
    (["--days", "0"], "days must be a positive number of days, got 0"),
])
def test_tls_create_refuses_bad_input(tmp_path, args, message):
    result = run("tls", "create", str(tmp_path / "certs"), *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "certs").exists()
