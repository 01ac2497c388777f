"""The node's TOML configuration (`psi serve --config node.toml`).

    [node]
    id = "agency-b"                 # this node's name, as in its certificate
    listen = "127.0.0.1:50052"
    data_dir = "data"               # SQLite store and OPRF key live here
    list_id = "wanted-persons"
    profile = "standard/1"          # or "exact/1"; see docs/matching.md

    [tls]
    ca = "pki/ca.pem"               # trusted CA for partner certificates
    cert = "pki/agency-b.pem"
    key = "pki/agency-b.key"

    [limits]                        # optional; defaults in psi.messages.Limits
    max_batch_size = 4096

    idle_seconds = 30               # a stream silent this long is closed

    [audit]                         # optional
    checkpoint_every = 100          # sign a checkpoint after this many entries (and at shutdown)
    signing_key = "audit-keys/agency-b.pem"   # the default: beside the config, never in data_dir

    [partners.agency-a]             # one table per partner agency; see server/policy.py
    lists = ["wanted-persons"]
    modes = ["intersection", "cardinality"]

Mutual TLS is required. `plaintext = true` under [node] is for local
experiments only and is refused unless `listen` is a loopback address.

Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agency.agreements import Agreement, parse_agreements
from agency.audit.chain import Signer
from agency.audit.log import AuditLog
from agency.keys import load_or_create_signing_key, public_key_path
from psi.errors import ConfigurationError
from psi.messages import Limits
from psi.profiles import PROFILES, Profile

DEFAULT_PROFILE = "standard/1"  # matches across spellings and scripts (docs/matching.md)


@dataclass(frozen=True)
class TlsConfig:
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    listen: str
    data_dir: Path
    list_id: str
    profile: Profile
    tls: TlsConfig
    limits: Limits
    checkpoint_every: int = 100
    # Outside data_dir: who can copy or edit the log must not also hold the key that signs it.
    signing_key_path: Path = Path("audit-keys/audit-signing.pem")
    agreements: dict[str, Agreement] = field(default_factory=dict)
    idle_seconds: int = 30
    plaintext: bool = False

    @property
    def store_path(self) -> Path:
        return self.data_dir / "watchlist.sqlite"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "oprf.key"

    @property
    def audit_log_path(self) -> Path:
        return self.data_dir / "audit.log"

    @property
    def legacy_signing_key_path(self) -> Path:
        """Where releases before issue 13 kept the key: inside data_dir, beside the log it signs."""
        return self.data_dir / "audit-signing.pem"


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise ConfigurationError(f"config needs a [{name}] section")
    return value


def _string(section: dict[str, Any], name: str, where: str, default: str | None = None) -> str:
    value = section.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"[{where}] {name} must be a non-empty string")
    return value


def load_config(path: Path) -> NodeConfig:
    """Read and check a node config. Raises ConfigurationError naming the bad key."""
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    base = path.resolve().parent
    node, tls = _section(doc, "node"), _section(doc, "tls")
    profile_id = _string(node, "profile", "node", DEFAULT_PROFILE)
    if profile_id not in PROFILES:
        raise ConfigurationError(f"[node] profile '{profile_id}' is unknown; known: {sorted(PROFILES)}")
    limits_doc = dict(doc.get("limits", {}))
    idle = limits_doc.pop("idle_seconds", 30)
    if not isinstance(idle, int) or idle < 1:
        raise ConfigurationError("[limits] idle_seconds must be a positive integer")
    known = {f.name for f in fields(Limits)}
    if not isinstance(limits_doc, dict) or set(limits_doc) - known:
        raise ConfigurationError(f"[limits] may only set {sorted(known)}")
    if not all(isinstance(v, int) and v > 0 for v in limits_doc.values()):
        raise ConfigurationError("[limits] values must be positive integers")
    audit = doc.get("audit", {})
    every = audit.get("checkpoint_every", 100) if isinstance(audit, dict) else None
    if not isinstance(every, int) or every < 1 or set(audit) - {"checkpoint_every", "signing_key"}:
        raise ConfigurationError("[audit] may only set checkpoint_every (a positive integer) and signing_key")
    node_id = _string(node, "id", "node")
    data_dir = base / _string(node, "data_dir", "node", "data")
    signing_key = base / _string(audit, "signing_key", "audit", f"audit-keys/{node_id}.pem")
    if signing_key.resolve().is_relative_to(data_dir.resolve()):
        raise ConfigurationError(f"[audit] signing_key {signing_key} is inside data_dir {data_dir}: keep the key "
                                 "that signs the audit log away from the log (docs/audit.md)")
    listen = _string(node, "listen", "node", "127.0.0.1:50051")
    plaintext = node.get("plaintext", False)
    if plaintext is not False and (plaintext is not True or not is_loopback(listen)):
        raise ConfigurationError("[node] plaintext = true is only allowed with a loopback listen address "
                                 "such as 127.0.0.1:PORT; remote partners always need mutual TLS")
    return NodeConfig(
        node_id=node_id,
        listen=listen,
        data_dir=data_dir,
        list_id=_string(node, "list_id", "node", "wanted-persons"),
        profile=PROFILES[profile_id],
        tls=TlsConfig(*(base / _string(tls, k, "tls") for k in ("ca", "cert", "key"))),
        limits=Limits(**limits_doc),
        checkpoint_every=every,
        signing_key_path=signing_key,
        agreements=parse_agreements(doc.get("partners")),
        idle_seconds=idle,
        plaintext=plaintext,
    )


def is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_config(node_id: str, listen: str, data_dir: str, ca: str, cert: str, key: str,
                  list_id: str = "wanted-persons", profile: str = DEFAULT_PROFILE, checkpoint_every: int = 100,
                  partners: tuple[str, ...] = ()) -> str:
    """A config file's text, with a default agreement (both modes) for each partner named."""
    agreements = "".join(
        f'\n[partners.{p}]\nlists = ["{list_id}"]\nmodes = ["intersection", "cardinality"]\n' for p in partners)
    return (
        f'[node]\nid = "{node_id}"\nlisten = "{listen}"\ndata_dir = "{data_dir}"\n'
        f'list_id = "{list_id}"\nprofile = "{profile}"\n\n'
        f'[tls]\nca = "{ca}"\ncert = "{cert}"\nkey = "{key}"\n\n'
        f"[audit]\ncheckpoint_every = {checkpoint_every}\n{agreements}"
    )


def audit_signer(config: NodeConfig) -> Signer:
    """The node's audit signing key (created on first use), never one left inside data_dir."""
    legacy = config.legacy_signing_key_path
    if legacy.exists():
        raise ConfigurationError(
            f"the audit signing key {legacy} is inside data_dir, beside the log it signs. Move it out: "
            f"`mkdir -p {config.signing_key_path.parent} && mv {legacy} {config.signing_key_path} && "
            f"mv {legacy.with_name('audit-signing.pub.pem')} {public_key_path(config.signing_key_path)}` "
            "(or set [audit] signing_key to where you move it), then give your officers its fingerprint "
            "(`psi audit key --config ...`)")
    return load_or_create_signing_key(config.signing_key_path)


def open_audit_log(config: NodeConfig) -> AuditLog:
    """The node's audit log, signed with its audit key (created on first use)."""
    return AuditLog(config.audit_log_path, config.node_id, audit_signer(config),
                    checkpoint_every=config.checkpoint_every)
