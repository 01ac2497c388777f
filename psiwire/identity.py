"""Who is on the other end of a TLS connection: the one common name of its certificate.

Both sides read identities here, never from gRPC's `x509_common_name`, which stops at a NUL
byte (a certificate for `agency-a\\0anything` would pass as agency-a).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from psi.errors import UnauthenticatedError

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_NAME_CHARS = 64  # RFC 5280's upper bound for a common name


@dataclass(frozen=True)
class PeerCertificate:
    name: str  # its one common name
    sha256: str  # hex SHA-256 of its DER encoding: what an agreement may pin


def certificate_identity(cert: x509.Certificate) -> PeerCertificate:
    """The certificate's identity; UnauthenticatedError unless it has exactly one clean common name."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise UnauthenticatedError(f"a certificate must name exactly one common name; this one has {len(names)}")
    name = names[0].value
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS or _CONTROLS.search(name):
        raise UnauthenticatedError("the certificate's common name is empty, too long or holds control characters")
    return PeerCertificate(name, hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest())


def identity_from_pem(pem: bytes) -> PeerCertificate:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise UnauthenticatedError("the peer certificate cannot be read") from None
    return certificate_identity(cert)


def identity_from_der(der: bytes) -> PeerCertificate:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise UnauthenticatedError("the peer certificate cannot be read") from None
    return certificate_identity(cert)
