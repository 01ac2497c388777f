"""The node's secret keys (OPRF key, audit signing key): files only the service account may read."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from Crypto.PublicKey import ECC

from agency.audit.chain import Signer
from psi import group, oprf
from psi.errors import ConfigurationError


@dataclass(frozen=True)
class ServerKey:
    epoch: int
    secret: bytes

    def __repr__(self) -> str:
        return f"ServerKey(epoch={self.epoch}, secret=<hidden>)"


def _check_permissions(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"key file {path} has mode {mode:o}; it must be readable by its owner only (chmod 600)"
        )


def _key_json(key: ServerKey) -> str:
    return json.dumps({"epoch": key.epoch, "key": key.secret.hex()})


def replace_key(path: Path, key: ServerKey) -> None:
    """Atomically install a new key file (mode 0600) in place of the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    _create_private(tmp, _key_json(key))
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_or_create_key(path: Path) -> ServerKey:
    """Load the key, or create epoch 1 with mode 0600 if there is none."""
    if not path.exists():
        key = ServerKey(1, oprf.generate_key())
        _create_private(path, _key_json(key))
        return key
    _check_permissions(path)
    try:
        doc = json.loads(path.read_text())
        key = ServerKey(int(doc["epoch"]), bytes.fromhex(doc["key"]))
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(f"key file {path} is unreadable") from None
    canonical = int.from_bytes(key.secret, "little") < group.ORDER
    if len(key.secret) != group.SCALAR_BYTES or not canonical or group.is_zero_scalar(key.secret) \
            or key.epoch < 1:
        raise ConfigurationError(f"key file {path} does not hold a valid key")
    return key


def _create_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def public_key_path(signing_key: Path) -> Path:
    return signing_key.with_name(signing_key.stem + ".pub.pem")


def load_or_create_signing_key(path: Path) -> Signer:
    """The node's Ed25519 audit signing key (0600); its public half is written beside it."""
    if not path.exists():
        key = ECC.generate(curve="Ed25519")
        _create_private(path, str(key.export_key(format="PEM")))
        signer = Signer(key)
        public_key_path(path).write_text(signer.public_pem())
        return signer
    _check_permissions(path)
    try:
        return Signer(ECC.import_key(path.read_text()))
    except ValueError:
        raise ConfigurationError(f"{path} does not hold an Ed25519 private key") from None
