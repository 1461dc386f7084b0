"""TLS for a small team cluster: a self-signed CA, one node certificate, and the ``Security`` that uses them.

Dask encrypts and authenticates its connections with TLS when the scheduler, the workers and the
clients share a :class:`distributed.Security` (their addresses then start with ``tls://``). A team
cluster needs one CA and one node certificate: every scheduler, worker and client presents that same
certificate (it is valid for servers and for clients), and every side accepts only peers whose
certificate the CA signed, so a client without it is refused::

    workbench tls create certs --host 10.0.0.5 --host scheduler.example.org     # once
    dask scheduler --tls-ca-file certs/ca.pem --tls-cert certs/node.pem --tls-key certs/node-key.pem
    dask worker tls://10.0.0.5:8786 --tls-ca-file certs/ca.pem --tls-cert certs/node.pem --tls-key certs/node-key.pem
    wb.init("tls://10.0.0.5:8786", security="certs")                            # in the notebook

Every machine needs ``ca.pem``, ``node.pem`` and ``node-key.pem``. ``ca-key.pem`` signs certificates,
so it can stay with whoever created the directory. Keys are written unencrypted (Dask cannot ask for
a passphrase) and readable by their owner only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Security

__all__ = ["CertificateFiles", "create_certificates", "security"]

#: A DNS name (optionally a ``*.`` wildcard): letters, digits and hyphens in dot-separated labels.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")

_KEY_MODE, _CERT_MODE = 0o600, 0o644


@dataclass(frozen=True)
class CertificateFiles:
    """The files of one certificate directory, as :func:`create_certificates` names them."""

    ca: Path  # the CA certificate every node trusts
    ca_key: Path  # the CA's private key: only needed to sign certificates
    cert: Path  # the node certificate, for servers and clients alike
    key: Path  # the node certificate's private key

    @classmethod
    def in_directory(cls, directory: str | os.PathLike[str]) -> CertificateFiles:
        folder = Path(directory).expanduser().absolute()
        return cls(folder / "ca.pem", folder / "ca-key.pem", folder / "node.pem", folder / "node-key.pem")

    @property
    def for_nodes(self) -> tuple[Path, Path, Path]:
        """What every scheduler, worker and client needs."""
        return self.ca, self.cert, self.key

    def dask_cli_options(self) -> list[str]:
        """The options that give ``dask scheduler`` and ``dask worker`` these certificates."""
        return ["--tls-ca-file", str(self.ca), "--tls-cert", str(self.cert), "--tls-key", str(self.key)]


def create_certificates(
    directory: str | os.PathLike[str],
    hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    days: int = 365,
    *,
    overwrite: bool = False,
) -> CertificateFiles:
    """Write a new CA and a node certificate it signs into ``directory`` (created if missing).

    Args:
        directory: where ``ca.pem``, ``ca-key.pem``, ``node.pem`` and ``node-key.pem`` go.
        hosts: the IP addresses and host names the scheduler and workers are reached by (the
            certificate's subject alternative names). Dask itself checks the CA signature, not the
            names, so they matter to other TLS clients only.
        days: how long both certificates are valid.
        overwrite: replace certificates already in ``directory`` (a new CA: every machine needs
            the new files). Without it, existing files are an error.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = CertificateFiles.in_directory(directory)
    alternative_names = _alternative_names(hosts)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive number of days, got {days!r}")
    existing = [str(path) for path in (files.ca, files.ca_key, files.cert, files.key) if os.path.lexists(path)]
    if existing and not overwrite:
        raise FileExistsError(
            f"certificates already exist ({', '.join(existing)}): pass overwrite=True "
            "(workbench tls create --force) to replace them with a new CA"
        )

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))  # 5 min of clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Workbench"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Workbench cluster CA {secrets.token_hex(4)}"),
    ])
    ca_cert = _signed_certificate(ca_name, ca_key.public_key(), ca_name, ca_key, validity, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (_key_usage(key_cert_sign=True, crl_sign=True), True),
    ])
    node_key = ec.generate_private_key(ec.SECP256R1())
    node_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Workbench"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Workbench cluster node"),
    ])
    node_cert = _signed_certificate(node_name, node_key.public_key(), ca_name, ca_key, validity, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(digital_signature=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (x509.SubjectAlternativeName(alternative_names), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ])

    files.ca.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, content, mode in (
        (files.ca_key, _private_pem(ca_key), _KEY_MODE),
        (files.ca, _certificate_pem(ca_cert), _CERT_MODE),
        (files.key, _private_pem(node_key), _KEY_MODE),
        (files.cert, _certificate_pem(node_cert), _CERT_MODE),
    ):
        _write(path, content, mode, overwrite)
    return files


def security(directory: str | os.PathLike[str]) -> Security:
    """A ``distributed.Security`` that requires TLS, with the certificates of ``directory`` for every role.

    The files are checked first, so a missing, unreadable, mismatched or expired one is named here
    rather than failing each TLS handshake later.
    """
    from distributed import Security

    files = CertificateFiles.in_directory(directory)
    folder = files.ca.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no certificate directory {folder}: create one with `workbench tls create {directory}`"
        )
    missing = [path.name for path in files.for_nodes if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"certificate directory {folder} lacks {', '.join(missing)} (it needs ca.pem, node.pem and "
            "node-key.pem, as `workbench tls create` writes them)"
        )
    _check(files)
    ca, cert, key = (str(path) for path in files.for_nodes)
    roles = {f"tls_{role}_{part}": path for role in ("client", "scheduler", "worker")
             for part, path in (("cert", cert), ("key", key))}
    return Security(require_encryption=True, tls_ca_file=ca, **roles)


def _alternative_names(hosts: Iterable[str]) -> list[Any]:
    """The subject alternative names for ``hosts``: IP addresses as IP names, the rest as DNS names."""
    from cryptography import x509

    if isinstance(hosts, str):  # one host, not its characters
        hosts = [hosts]
    names: list[Any] = []
    for host in dict.fromkeys(hosts):
        if not isinstance(host, str):
            raise TypeError(f"hosts must be strings (IP addresses or host names), got {host!r}")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not _HOSTNAME.match(host):
                raise ValueError(f"host {host!r} is neither an IP address nor a host name") from None
            names.append(x509.DNSName(host.lower()))
    if not names:
        raise ValueError("hosts is empty: name the IP addresses or host names of the scheduler and workers")
    return names


def _key_usage(**allowed: bool) -> Any:
    """An X.509 key usage extension allowing only the usages named."""
    from cryptography import x509

    usages = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{usage: allowed.get(usage, False) for usage in usages})


def _signed_certificate(
    subject: Any, public_key: Any, issuer: Any, issuer_key: Any,
    validity: tuple[datetime.datetime, datetime.datetime], extensions: list[tuple[Any, bool]],
) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _private_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate_pem(certificate: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, content: bytes, mode: int, overwrite: bool) -> None:
    """Write ``content`` with ``mode`` from the start, so a key is never readable by others, even briefly."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    with os.fdopen(os.open(path, flags, mode), "wb") as out:
        os.fchmod(out.fileno(), mode)  # a replaced file would keep its old mode
        out.write(content)


def _check(files: CertificateFiles) -> None:
    """Refuse, naming the file, certificates Dask would fail on at every handshake."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    ca = _load(files.ca, "certificate", x509.load_pem_x509_certificate)
    cert = _load(files.cert, "certificate", x509.load_pem_x509_certificate)
    key = _load(files.key, "private key", lambda data: serialization.load_pem_private_key(data, password=None))
    if key.public_key() != cert.public_key():
        raise ValueError(f"{files.key} is not the key of {files.cert}: both must come from the same directory")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as error:
        raise ValueError(
            f"{files.cert} was not signed by {files.ca}: copy the files of one `workbench tls create` "
            "directory together"
        ) from error
    now = datetime.datetime.now(datetime.timezone.utc)
    for path, certificate in ((files.ca, ca), (files.cert, cert)):
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise ValueError(
                f"{path} is valid from {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now: create new certificates "
                "with `workbench tls create --force`"
            )


def _load(path: Path, what: str, loader: Any) -> Any:
    try:
        return loader(path.read_bytes())
    except OSError as error:
        raise OSError(f"cannot read {path}: {error.strerror}") from error
    except TypeError as error:  # an encrypted key
        raise ValueError(f"{path} is an encrypted {what}: Dask needs it unencrypted") from error
    except ValueError as error:
        raise ValueError(f"{path} is not a PEM {what} ({error})") from error
