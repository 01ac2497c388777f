"""Threat: impersonation. Who a caller is comes from its certificate, parsed by us; who answers is checked too."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agency.config import TlsConfig, load_config, render_config
from cli.main import main
from client.api import MatchClient
from client.tag_cache import CachedTags, TagCache
from psi.errors import UnauthenticatedError
from psi.messages import Mode
from psi.record_parsing import format_csv
from psiwire import matching_pb2 as pb
from server.app import create_server, open_node
from server.service import UNVERIFIED_PARTNER
from server.watchlist import import_records
from tests.conftest import LiveNode, make_config, tls_for
from tests.integration.hostile.conftest import AGREEMENTS, LISTS, Code, Hostile, refusal

EXPECTED = {(a, {r.record_id: r.reference for r in LISTS.b}[b]) for a, b in LISTS.overlap}


@pytest.mark.parametrize("cert", ["nul-cn", "two-cn"])
def test_a_certificate_must_carry_exactly_one_clean_common_name(hostile: Hostile, cert: str) -> None:
    # gRPC's x509_common_name reads "agency-a\0anything" as agency-a, and the first of two names.
    stub = hostile.stub(cert)
    assert refusal(lambda: stub.GetParameters(pb.GetParametersRequest()))[0] is Code.UNAUTHENTICATED
    assert refusal(lambda: list(stub.Evaluate(iter([hostile.start(1)]))))[0] is Code.UNAUTHENTICATED
    refused = [b for b in hostile.audit_bodies() if b["operation"] == "request.refused"]
    assert [b["partner"] for b in refused] == [UNVERIFIED_PARTNER] * 2
    assert all(b["operation"] != "query.served" for b in hostile.audit_bodies())


def _sha256(pem: Path) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(Encoding.DER)).hexdigest()


def test_an_agreement_may_pin_the_partners_certificate(start_node: Callable[..., LiveNode],
                                                       hostile_pki: Path) -> None:
    pinned = AGREEMENTS.replace('rate_per_minute = 600\n', 'rate_per_minute = 600\ncertificate_sha256 = '
                                f'"{_sha256(hostile_pki / "agency-a.pem")}"\n', 1)
    hostile = Hostile(start_node(LISTS.b, partners=(), extra=pinned), hostile_pki)
    assert hostile.stub("agency-a").GetParameters(pb.GetParametersRequest()).node_id == "agency-b"
    second = hostile.stub("agency-a-second")  # same CA, same name, another key
    assert refusal(lambda: second.GetParameters(pb.GetParametersRequest())) == (
        Code.UNAUTHENTICATED, "the certificate for 'agency-a' is not the one its agreement pins")


def test_the_client_refuses_a_node_that_is_not_the_partner_it_meant(hostile: Hostile) -> None:
    with MatchClient(hostile.live.target, hostile.tls(), partner="intruder") as client, \
            pytest.raises(UnauthenticatedError, match="certificate for 'agency-b', not for 'intruder'"):
        client.match(LISTS.a, purpose="p", case_reference="c")
    assert not [b for b in hostile.audit_bodies() if b.get("partner") == "agency-a"]  # nothing was asked


@pytest.fixture
def impostor(tmp_path: Path, hostile_pki: Path) -> Iterator[LiveNode]:
    """A node of agency `eager` whose config claims to be agency-b (its certificate says eager).

    load_config refuses such a config, so the impostor swaps the certificate in after it: code it runs itself.
    """
    path = tmp_path / "impostor.toml"
    path.write_text(render_config("agency-b", "127.0.0.1:50051", str(tmp_path / "impostor"),
                                  str(hostile_pki / "ca.pem"), str(hostile_pki / "agency-b.pem"),
                                  str(hostile_pki / "agency-b.key"), partners=("agency-a",), profile="exact/1"))
    config = replace(load_config(path), tls=TlsConfig(hostile_pki / "ca.pem", hostile_pki / "eager.pem",
                                                      hostile_pki / "eager.key"))
    import_records(config, LISTS.b, "test-operator")
    node = open_node(config)
    server, port = create_server(node, "127.0.0.1:0", max_workers=4)
    server.start()
    yield LiveNode(config, node, server, port)
    server.stop(grace=None).wait()
    node.close()


@pytest.mark.parametrize("meant", ["agency-b", None])
def test_a_node_claiming_another_agencys_node_id_is_not_believed(impostor: LiveNode, hostile_pki: Path,
                                                                 tmp_path: Path, meant: str | None) -> None:
    message = "certificate for 'eager', not for 'agency-b'" if meant else "'eager' claims to be node 'agency-b'"
    with MatchClient(impostor.target, tls_for(hostile_pki, "agency-a"), partner=meant,
                     cache_dir=tmp_path / "cache") as client, pytest.raises(UnauthenticatedError, match=message):
        client.match(LISTS.a, purpose="p", case_reference="c")
    assert not (tmp_path / "cache").exists()  # nothing cached under agency-b's name


def test_psi_match_checks_the_partner_named_on_the_command_line(hostile: Hostile, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path, hostile.pki, "agency-a", partners=("agency-b",), profile="exact/1")
    records = tmp_path / "a.csv"
    records.write_text(format_csv(LISTS.a), encoding="utf-8")
    common = ["match", "--server", hostile.live.target, "--input", str(records), "--out", str(tmp_path / "hits.csv"),
              "--config", str(tmp_path / "agency-a.toml"), "--purpose", "p", "--case", "c", "--quiet"]
    assert main([*common, "--partner", "intruder"]) == 9  # identity (cli.exit_codes)
    assert "not for 'intruder'" in " ".join(capsys.readouterr().err.split())  # rich wraps lines
    assert main(common) == 0  # the config's one partner, agency-b, is the node's certificate
    lines = [json.loads(line) for line in config.audit_log_path.read_text().splitlines()]
    made = [(b["partner"], b["outcome"]) for b in (line["body"] for line in lines if line["kind"] == "entry")
            if b["operation"] == "query.made"]
    assert made == [(hostile.live.target, "refused"), ("agency-b", "ok")]  # never a name it did not verify


def test_a_cached_tag_set_is_reused_only_if_it_holds_the_announced_count(hostile: Hostile, tmp_path: Path) -> None:
    with MatchClient(hostile.live.target, hostile.tls(), partner="agency-b", cache_dir=tmp_path / "cache") as client:
        params = client.parameters()
        full = client.fetch_tags(params, Mode.INTERSECTION)
        assert len(full) == params.tag_count
    cache = TagCache(tmp_path / "cache")
    held = cache.load("agency-b", params.list_id, Mode.INTERSECTION)
    assert held is not None and held.list_version == params.list_version
    half = params.tag_count // 2  # a damaged or planted file claiming the current version
    cache.save(CachedTags("agency-b", params.list_id, Mode.INTERSECTION, held.key_epoch, held.list_version,
                          held.tag_length, held.tags[:half * held.tag_length], list(held.labels)[:half]))
    with MatchClient(hostile.live.target, hostile.tls(), partner="agency-b", cache_dir=tmp_path / "cache") as client:
        result = client.match(LISTS.a, purpose="p", case_reference="c")
    assert {(h.record_id, h.reference) for h in result.hits} == EXPECTED
