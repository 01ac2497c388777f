"""The node's TOML configuration (`psi serve --config node.toml`).

    [node]
    id = "agency-b"                 # this node's name: its certificate's common name
    listen = "127.0.0.1:50052"      # HOST:PORT (IPv6 as [::1]:PORT), port 1-65535
    data_dir = "data"               # SQLite store and OPRF key live here
    list_id = "wanted-persons"
    profile = "standard/5"          # or "exact/1"; see docs/matching.md

    [tls]
    ca = "pki/ca.pem"               # trusted CA for partner certificates
    cert = "pki/agency-b.pem"       # issued by that CA to [node] id; may carry its intermediates after it
    key = "pki/agency-b.key"        # the certificate's key, unencrypted PEM

    [limits]                        # optional; defaults in psi.messages.Limits
    max_batch_size = 4096
    idle_seconds = 30               # a stream silent this long is closed

    [audit]                         # optional
    checkpoint_every = 100          # sign a checkpoint after this many entries (and at shutdown)
    signing_key = "audit-keys/agency-b.pem"   # the default: beside the config, never in data_dir

    [metrics]                       # optional; no section, no endpoint (docs/operations.md)
    listen = "127.0.0.1:9464"       # Prometheus scrapes http://HOST:PORT/metrics

    [partners.agency-a]             # one table per partner agency; see agency/agreements.py
    lists = ["wanted-persons"]
    modes = ["intersection", "cardinality"]

Mutual TLS is required. `plaintext = true` under [node] is for local
experiments only and is refused unless `listen` is a loopback address.

Relative paths are resolved against the config file's folder. `load_config`
checks everything (unknown sections and keys, types, ranges, addresses, and
that the TLS files are readable, the key is the certificate's, the certificate
names this node and the CA signed it) before any caller creates anything on
disk; every error names the file, the line where it can tell, the section and
the key.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agency.agreements import Agreement, parse_agreements
from agency.audit.chain import Signer
from agency.audit.log import AuditLog
from agency.keys import load_or_create_signing_key, public_key_path
from psi.errors import ConfigurationError
from psi.messages import Limits
from psi.profiles import PROFILES, STANDARD_PROFILE, Profile

DEFAULT_PROFILE = STANDARD_PROFILE.profile_id  # matches across spellings and scripts (docs/matching.md)
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"  # Prometheus' registered port for exporters like this one

# Every key each section may hold; anything else is a typo that would otherwise be ignored silently.
SCHEMA: dict[str, frozenset[str]] = {
    "node": frozenset({"id", "listen", "data_dir", "list_id", "profile", "plaintext"}),
    "tls": frozenset({"ca", "cert", "key"}),
    "limits": frozenset({f.name for f in fields(Limits)} | {"idle_seconds"}),
    "audit": frozenset({"checkpoint_every", "signing_key"}),
    "metrics": frozenset({"listen"}),
}
PARTNER_KEYS = frozenset(f.name for f in fields(Agreement)) - {"partner"}  # under [partners.NAME]
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
_HEADER = re.compile(r"\s*\[\[?([^\]]+)\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""\s*(["']?)([A-Za-z0-9_.-]+)\1\s*=""")


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
    metrics_listen: str | None = None  # None: no metrics endpoint

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


def did_you_mean(name: str, known: Iterable[str], shape: str = "'{}'") -> str:
    """' (did you mean 'x'?)' for the closest known name (written as `shape`), or '' when none is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {shape.format(close[0])}?)" if close else ""


class _Source:
    """The config's text, to say on which line a section or key stands (tomllib does not)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self._lines = text.splitlines()

    def line(self, section: str | None, key: str | None = None) -> int | None:
        current: str | None = None
        for number, text in enumerate(self._lines, 1):
            header = _HEADER.match(text)
            if header:
                current = ".".join(p.strip().strip("\"'") for p in header.group(1).split("."))
                if key is None and section is not None and f"{current}.".startswith(f"{section}."):
                    return number
                continue
            found = _KEY.match(text)
            if key is not None and current == section and found and found.group(2) == key:
                return number
        return None

    def error(self, message: str, section: str | None = None, key: str | None = None,
              named: bool = True) -> ConfigurationError:
        """`message` prefixed with FILE:LINE: and (if `named`) the section it is about."""
        line = self.line(section, key) if section is not None or key is not None else None
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigurationError(f"{where}: [{section}] {message}" if section and named else f"{where}: {message}")


def _table(doc: dict[str, Any], name: str, src: _Source, required: bool) -> dict[str, Any]:
    value = doc.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise src.error(f"the config needs a [{name}] section" if value is None else
                        f"'{name}' must be a section [{name}], not a value")
    return value


def _check_names(doc: dict[str, Any], src: _Source) -> None:
    """Unknown sections and keys, each named with its line and the closest valid name."""
    for name, value in doc.items():
        if name == "partners":
            continue
        if name not in SCHEMA:
            home = sorted(s for s, keys in SCHEMA.items() if name in keys)
            if not isinstance(value, dict) and home:
                raise src.error(f"'{name}' is outside any section; it belongs under [{home[0]}]", None, name)
            raise src.error(f"unknown section [{name}]{did_you_mean(name, [*SCHEMA, 'partners'], '[{}]')}; "
                            f"known: {', '.join(f'[{s}]' for s in [*SCHEMA, 'partners.NAME'])}", name, named=False)
        if isinstance(value, dict):
            for key in value:
                if key not in SCHEMA[name]:
                    raise src.error(f"unknown key '{key}'{did_you_mean(key, SCHEMA[name])}", name, key)
    partners = doc.get("partners", {})
    if not isinstance(partners, dict):
        raise src.error("'partners' must hold one table per partner, e.g. [partners.agency-a]", None, "partners")
    for partner, table in partners.items():
        section = f"partners.{partner}"
        if not isinstance(table, dict):
            raise src.error(f"'{partner}' must be a table [partners.{partner}] of the agreement's terms",
                            "partners", partner)
        for key in table:
            if key not in PARTNER_KEYS:
                raise src.error(f"unknown key '{key}'{did_you_mean(key, PARTNER_KEYS)}", section, key)


def _string(table: dict[str, Any], name: str, section: str, src: _Source, default: str | None = None) -> str:
    if name not in table and default is None:
        raise src.error(f"{name} is required", section)
    value = table.get(name, default)
    if not isinstance(value, str) or not value:
        raise src.error(f"{name} must be a non-empty string", section, name)
    return value


def _positive(table: dict[str, Any], name: str, section: str, src: _Source, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise src.error(f"{name} must be a positive integer, not {value!r}", section, name)
    return value


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of a HOST:PORT address (IPv6 in brackets); ValueError saying what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text:
        raise ValueError("needs a host and a port, e.g. 127.0.0.1:50051 (or [::1]:50051)")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"'{host}' is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets, e.g. [::1]:50051")
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"'{host}' is neither an IP address nor a host name")
    if not re.fullmatch(r"[0-9]+", port_text):
        raise ValueError(f"the port '{port_text}' is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"the port {port} is out of range (1-65535)")
    return host.strip("[]"), port


def _listen(table: dict[str, Any], section: str, src: _Source, default: str) -> str:
    listen = _string(table, "listen", section, src, default)
    try:
        parse_listen(listen)
    except ValueError as exc:
        raise src.error(f"listen = '{listen}': {exc}", section, "listen") from None
    return listen


def load_config(path: Path) -> NodeConfig:
    """Read and check a node config, TLS files included; ConfigurationError naming what to fix.

    Creates nothing: a caller that gets a NodeConfig may create the data dir, keys and log.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc}") from None
    src = _Source(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
    _check_names(doc, src)
    config = _node_config(doc, path.resolve().parent, src)
    _check_tls(config, src)
    return config


def _node_config(doc: dict[str, Any], base: Path, src: _Source) -> NodeConfig:
    node, tls = _table(doc, "node", src, True), _table(doc, "tls", src, True)
    limits, audit = _table(doc, "limits", src, False), _table(doc, "audit", src, False)
    profile_id = _string(node, "profile", "node", src, DEFAULT_PROFILE)
    if profile_id not in PROFILES:
        raise src.error(f"profile '{profile_id}' is unknown{did_you_mean(profile_id, PROFILES)}; "
                        f"known: {', '.join(sorted(PROFILES))}", "node", "profile")
    numbers = {name: _positive(limits, name, "limits", src, 1) for name in limits}
    idle = numbers.pop("idle_seconds", 30)
    node_id = _string(node, "id", "node", src)
    data_dir = base / _string(node, "data_dir", "node", src, "data")
    if data_dir.exists() and not data_dir.is_dir():
        raise src.error(f"data_dir {data_dir} exists and is not a folder", "node", "data_dir")
    signing_key = base / _string(audit, "signing_key", "audit", src, f"audit-keys/{node_id}.pem")
    if signing_key.resolve().is_relative_to(data_dir.resolve()):
        raise src.error(f"signing_key {signing_key} is inside data_dir {data_dir}: keep the key that signs the "
                        "audit log away from the log (docs/audit.md)", "audit", "signing_key")
    listen = _listen(node, "node", src, "127.0.0.1:50051")
    plaintext = node.get("plaintext", False)
    if not isinstance(plaintext, bool):
        raise src.error("plaintext must be true or false", "node", "plaintext")
    if plaintext and not is_loopback(listen):
        raise src.error("plaintext = true is only allowed with a loopback listen address such as "
                        "127.0.0.1:PORT; remote partners always need mutual TLS", "node", "plaintext")
    metrics = None
    if "metrics" in doc:
        metrics = _listen(_table(doc, "metrics", src, True), "metrics", src, DEFAULT_METRICS_LISTEN)
        if parse_listen(metrics)[1] == parse_listen(listen)[1]:
            raise src.error(f"listen {metrics} uses the port of [node] listen {listen}; give the metrics "
                            "endpoint a port of its own", "metrics", "listen")
    try:
        agreements = parse_agreements(doc.get("partners"))
    except ConfigurationError as exc:
        raise src.error(str(exc)) from None
    return NodeConfig(
        node_id=node_id, listen=listen, data_dir=data_dir,
        list_id=_string(node, "list_id", "node", src, "wanted-persons"),
        profile=PROFILES[profile_id],
        tls=TlsConfig(*(base / _string(tls, k, "tls", src) for k in ("ca", "cert", "key"))),
        limits=Limits(**numbers), checkpoint_every=_positive(audit, "checkpoint_every", "audit", src, 100),
        signing_key_path=signing_key, agreements=agreements, idle_seconds=idle, plaintext=plaintext,
        metrics_listen=metrics,
    )


def _read_tls(path: Path, name: str, src: _Source) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise src.error(f"{name}: cannot read {path}: {exc.strerror}", "tls", name) from None


def _certificates(path: Path, name: str, src: _Source) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read_tls(path, name, src))
    except ValueError:
        certs = []
    if not certs:
        raise src.error(f"{name}: {path} holds no PEM certificate", "tls", name)
    return certs


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_tls(config: NodeConfig, src: _Source) -> None:
    """The node's TLS files are readable, the key is the certificate's, the certificate names
    [node] id, is valid now, and the CA signed it (through the intermediates after it in the file).
    gRPC would otherwise fail on them with a traceback, or serve another node's certificate."""
    tls = config.tls
    cas, chain = _certificates(tls.ca, "ca", src), _certificates(tls.cert, "cert", src)
    try:
        key = serialization.load_pem_private_key(_read_tls(tls.key, "key", src), password=None)
    except (ValueError, TypeError):
        raise src.error(f"key: {tls.key} is not an unencrypted PEM private key", "tls", "key") from None
    leaf = chain[0]
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise src.error(f"key: {tls.key} is not the key of the certificate {tls.cert}; give the key file "
                        "issued together with that certificate", "tls", "key")
    names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [config.node_id]:
        raise src.error(f"cert: {tls.cert} is issued to {', '.join(map(repr, names)) or 'no name'}, but [node] "
                        f"id is '{config.node_id}'; partners know this node by its certificate: use this "
                        "node's certificate, or correct [node] id", "tls", "cert")
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise src.error(f"cert: {tls.cert} is valid from {leaf.not_valid_before_utc:%Y-%m-%d} to "
                        f"{leaf.not_valid_after_utc:%Y-%m-%d}, not now; renew it", "tls", "cert")
    linked = all(_issued_by(a, b) for a, b in pairwise(chain))
    if not linked or not any(_issued_by(chain[-1], ca) for ca in cas):
        raise src.error(f"cert: {tls.cert} is not signed by the CA in {tls.ca}; partners would refuse it: "
                        "use a certificate of that CA, or its CA file", "tls", "cert")


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
