"""A development CA and node certificates for demos and tests (`psi pki init`).

Production nodes use certificates from their agency's own PKI; this only
makes a CA and, per node, a key and a certificate valid for both TLS server
and client authentication on localhost.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from psi.errors import ConfigurationError

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class NodeCredentials:
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(*common_names: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "psi development PKI"),
                      *(x509.NameAttribute(NameOID.COMMON_NAME, name) for name in common_names)])


def init_pki(out_dir: Path, node_ids: list[str], *, now: dt.datetime | None = None,
             validity: dt.timedelta = _VALIDITY, force: bool = False) -> dict[str, NodeCredentials]:
    """Create ca.pem (+ ca.key) and <node>.pem/<node>.key for each node id.

    Refuses, before writing anything, to replace existing files unless `force`: a new CA
    silently invalidates every certificate the old one signed.
    """
    if not node_ids:
        raise ConfigurationError("name at least one node")
    names = ["ca.pem", "ca.key", *(f"{n}.{ext}" for n in node_ids for ext in ("pem", "key"))]
    existing = [name for name in names if (out_dir / name).exists()]
    if existing and not force:
        raise ConfigurationError(f"{out_dir} already holds {', '.join(existing)}; a new CA would make every "
                                 "certificate of the old one untrusted. Pass --force to replace them, or choose "
                                 "another --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("psi development CA")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (out_dir / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(out_dir / "ca.key", _key_pem(ca_key))
    return {node_id: issue_certificate(out_dir, node_id, start=start, validity=validity) for node_id in node_ids}


def issue_certificate(out_dir: Path, node_id: str, *, start: dt.datetime | None = None,
                      validity: dt.timedelta = _VALIDITY, common_names: tuple[str, ...] | None = None
                      ) -> NodeCredentials:
    """A node key and certificate signed by the CA in `out_dir` (ca.pem, ca.key), in <node_id>.pem/.key.

    `common_names` (default: the node id) lets tests issue hostile subjects: several names, a NUL byte.
    """
    ca_cert = x509.load_pem_x509_certificate((out_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((out_dir / "ca.key").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError("the development CA key must be an EC key")
    start = start or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(*(common_names or (node_id,)))).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(node_id), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    creds = NodeCredentials(out_dir / f"{node_id}.pem", out_dir / f"{node_id}.key")
    creds.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(creds.key, _key_pem(key))
    return creds
