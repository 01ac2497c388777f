"""The node's secret keys (OPRF key, audit signing key): files only the service account may read."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from Crypto.PublicKey import ECC

from agency.audit.chain import Signer
from agency.audit.log import write_all, write_failure
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
    """Atomically install a new key file (mode 0600) in place of the old one, or keep the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    _create_private(tmp, _key_json(key))
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigurationError(write_failure(f"the key file {path}", exc)) from None
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def key_fingerprint(key: ServerKey) -> str:
    """Names a key without revealing it: SHA-256 of its public key k*G (hex), as stored per epoch."""
    return hashlib.sha256(group.scalar_mult_base(key.secret)).hexdigest()


def create_key(path: Path, epoch: int) -> ServerKey:
    """A fresh key of `epoch` in a new file (mode 0600); refuses to replace an existing one."""
    key = ServerKey(epoch, oprf.generate_key())
    try:
        _create_private(path, _key_json(key))
    except FileExistsError:
        raise ConfigurationError(f"key file {path} already exists; a node's key is never replaced by a new one "
                                 "(use `psi keys rotate`)") from None
    return key


def load_key(path: Path) -> ServerKey:
    """Read a key file; never creates one. Raises ConfigurationError saying what is wrong."""
    try:
        _check_permissions(path)
        doc = json.loads(path.read_text())
        key = ServerKey(int(doc["epoch"]), bytes.fromhex(doc["key"]))
    except FileNotFoundError:
        raise ConfigurationError(f"key file {path} is missing") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigurationError(f"key file {path} is unreadable") from None
    canonical = int.from_bytes(key.secret, "little") < group.ORDER
    if len(key.secret) != group.SCALAR_BYTES or not canonical or group.is_zero_scalar(key.secret) \
            or key.epoch < 1:
        raise ConfigurationError(f"key file {path} does not hold a valid key")
    return key


def _create_private(path: Path, text: str) -> None:
    """Create `path` (0600) holding `text`, durably; on failure no partial file is left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, text.encode())
        os.fsync(fd)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise ConfigurationError(write_failure(f"the key file {path}", exc)) from None
    finally:
        os.close(fd)


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
