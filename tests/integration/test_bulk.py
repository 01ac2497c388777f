"""Bulk mode over a real gRPC server with mutual TLS on 127.0.0.1: the same hits as intersection mode,
follow-up on a bulk hit, the agreement's mode, size and budget, replays, and one audit entry per
session on both sides."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

import client.record_keys as record_keys
from agency.audit.reconcile import reconcile
from client.api import MatchClient
from client.bulk import AUTO_MIN_CLIENT_RECORDS, choose_mode
from demo.synthetic import make_lists
from psi import bulk as core
from psi.errors import BudgetExceededError, PermissionDeniedError
from psi.messages import Mode
from psi.records import Record
from psi.workers import WorkerPool
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from server.app import create_server, open_node
from server.watchlist import import_records
from tests.conftest import LiveNode, make_config, tls_for
from tests.integration import raw_calls

LISTS = make_lists(60, 80, 20, seed=181)


def agreements(modes: str = '["intersection", "bulk"]', **numbers: int) -> str:
    extra = "".join(f"{name} = {value}\n" for name, value in numbers.items())
    return f'\n[partners.agency-a]\nlists = ["wanted-persons"]\nmodes = {modes}\nrate_per_minute = 600\n{extra}'




@pytest.fixture
def bulk_node(start_node: Callable[..., LiveNode]) -> LiveNode:
    return start_node(LISTS.b, partners=(), extra=agreements())


def _client(live: LiveNode, pki_dir: Path) -> MatchClient:
    return MatchClient(live.target, tls_for(pki_dir, "agency-a"), partner="agency-b", timeout=60)


def _served(live: LiveNode) -> list[dict[str, object]]:
    return [b for b in raw_calls.audit_bodies(live.config.audit_log_path)
            if b["operation"] in ("query.served", "request.refused") and b.get("mode") == "bulk"]


def test_bulk_hits_equal_intersection_hits_rules_labels_and_followup_keys(bulk_node: LiveNode, pki_dir: Path) -> None:
    with _client(bulk_node, pki_dir) as client:
        plain = client.match(LISTS.a, purpose="p", case_reference="c")
        bulk = client.bulk_match(LISTS.a, purpose="p", case_reference="c")
        via_match = client.match(LISTS.a, purpose="p", case_reference="c", mode=Mode.BULK)
    assert plain.hits, "the lists overlap"
    assert bulk.mode is Mode.BULK and bulk.hits == plain.hits == via_match.hits  # rules, labels, follow-up keys
    assert (bulk.records, bulk.hit_records) == (plain.records, plain.hit_records)
    b_ids = {r.record_id: r.reference for r in LISTS.b}
    assert {(h.record_id, h.reference) for h in bulk.hits} >= {(a, b_ids[b]) for a, b in LISTS.overlap
                                                                 if a in {h.record_id for h in plain.hits}}


def test_keys_derived_on_forked_workers_give_the_same_hits(bulk_node: LiveNode, pki_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Forked beside this process's gRPC threads (server and client), as a large list is.
    with _client(bulk_node, pki_dir) as client:
        alone = client.bulk_match(LISTS.a, purpose="p", case_reference="c")
        monkeypatch.setattr(record_keys, "_default_workers", lambda _: 2)
        split = client.bulk_match(LISTS.a, purpose="p", case_reference="c")
    assert alone.hits and split.hits == alone.hits and split.keys == alone.keys


def test_a_key_on_several_records_of_either_side_hits_each(start_node: Callable[..., LiveNode],
                                                             pki_dir: Path) -> None:
    twin = dataclasses.replace(LISTS.b[0], record_id="twin", reference="REF-TWIN", category="witness")
    live = start_node([*LISTS.b, twin], partners=(), extra=agreements())
    mine = [dataclasses.replace(LISTS.b[0], record_id=rid, reference="") for rid in ("x1", "x2")]
    with _client(live, pki_dir) as client:
        plain = client.match(mine, purpose="p", case_reference="c")
        bulk = client.bulk_match(mine, purpose="p", case_reference="c")
    assert bulk.hits == plain.hits
    assert {(h.record_id, h.reference) for h in bulk.hits} == {
        (x, ref) for x in ("x1", "x2") for ref in (LISTS.b[0].reference, "REF-TWIN")}


def test_followup_works_on_a_bulk_hit(bulk_node: LiveNode, pki_dir: Path) -> None:
    with _client(bulk_node, pki_dir) as client:
        hit = client.bulk_match(LISTS.a, purpose="p", case_reference="c").hits[0]
        status = client.request_followup(hit, purpose="p", case_reference="c", officer="o")
    assert status.status == "pending" and status.reference == hit.reference


def test_followup_is_open_to_a_bulk_only_agreement(start_node: Callable[..., LiveNode], pki_dir: Path) -> None:
    live = start_node(LISTS.b, partners=(), extra=agreements('["bulk"]'))
    with _client(live, pki_dir) as client:
        hit = client.bulk_match(LISTS.a, purpose="p", case_reference="c").hits[0]
        assert client.request_followup(hit, purpose="p", case_reference="c", officer="o").status == "pending"
        with pytest.raises(PermissionDeniedError, match="allows only mode"):
            client.match(LISTS.a, purpose="p", case_reference="c")


def test_one_audit_entry_per_session_on_both_sides(bulk_node: LiveNode, pki_dir: Path) -> None:
    sink = raw_calls.AuditSink()
    with _client(bulk_node, pki_dir) as client:
        result = client.bulk_match(LISTS.a, purpose="fugitive search", case_reference="K-7", operator="officer-1",
                                   audit=sink)
    (made,) = sink.bodies
    (served,) = _served(bulk_node)
    assert made["operation"] == "query.made" and made["mode"] == "bulk" and made["end_state"] == "completed"
    assert made["hits"] == result.hit_records and made["client_records"] == len(LISTS.a)
    assert made["correction_bytes"] > 0 and made["result_bytes"] > 0
    assert served["operation"] == "query.served" and served["end_state"] == "completed"
    assert served["partner"] == "agency-a" and served["operator"] == "officer-1" and served["case"] == "K-7"
    for field in ("request_id", "session_id", "client_elements", "correction_bytes"):
        assert made[field] == served[field], field
    # Charged one evaluation per cuckoo bin: what a receiver filling every bin could test.
    charged = core.bins(result.keys)
    assert bulk_node.node.store.budget_used("agency-a", 1) == core.bins(made["client_elements"]) == charged
    paired = reconcile(sink.bodies, raw_calls.audit_bodies(bulk_node.config.audit_log_path), "agency-a", "agency-b")
    assert paired.clean and paired.matched == 1


def test_a_mode_outside_the_agreement_is_permission_denied_on_both_logs(
        start_node: Callable[..., LiveNode], pki_dir: Path) -> None:
    live = start_node(LISTS.b, partners=(), extra=agreements('["intersection"]'))
    sink = raw_calls.AuditSink()
    with _client(live, pki_dir) as client, pytest.raises(PermissionDeniedError, match="allows only mode"):
        client.bulk_match(LISTS.a, purpose="p", case_reference="c", audit=sink)
    (made,) = sink.bodies
    assert (made["status"], made["end_state"], made["outcome"]) == ("PERMISSION_DENIED", "refused", "refused")
    (refused,) = _served(live)
    assert refused["operation"] == "request.refused" and refused["status"] == "PERMISSION_DENIED"
    assert refused["request_id"] == made["request_id"] and "end_state" not in refused
    paired = reconcile(sink.bodies, raw_calls.audit_bodies(live.config.audit_log_path), "agency-a", "agency-b")
    assert paired.clean and paired.matched == 1


def test_an_announcement_over_the_agreed_size_is_permission_denied(start_node: Callable[..., LiveNode],
                                                                   pki_dir: Path) -> None:
    live = start_node(LISTS.b, partners=(), extra=agreements(max_query_size=10))
    with _client(live, pki_dir) as client, pytest.raises(PermissionDeniedError, match="at most 10 elements"):
        client.bulk_match(LISTS.a, purpose="p", case_reference="c")
    assert live.node.store.budget_used("agency-a", 1) == 0


def test_the_budget_counts_the_clients_bins_and_is_exhausted(start_node: Callable[..., LiveNode],
                                                            pki_dir: Path) -> None:
    live = start_node(LISTS.b, partners=(), extra=agreements(budget_per_epoch=400))
    with _client(live, pki_dir) as client:
        first = client.bulk_match(LISTS.a[:10], purpose="p", case_reference="c")
        assert live.node.store.budget_used("agency-a", 1) == core.bins(first.keys) == 256  # the smallest table
        with pytest.raises(BudgetExceededError, match="evaluation budget of 400"):
            client.bulk_match(LISTS.a[:10], purpose="p", case_reference="c")
    assert live.node.store.budget_used("agency-a", 1) == core.bins(first.keys)


def bulk_start(live: LiveNode, keys: list[bytes], **changes: object) -> tuple[pb.BulkRequest, Any]:
    """A valid BulkStart for the node's list and its receiver, with `changes` applied."""
    receiver = core.BulkReceiver(keys)
    profile = live.config.profile
    fields = {"list_id": "wanted-persons", "key_epoch": 1, "profile_id": profile.profile_id,
              "profile_hash": profile.definition_hash, "purpose": "p", "case_reference": "c",
              "request_id": uuid.uuid4().hex, "suite": core.SUITE, "hello": receiver.hello()} | changes
    return pb.BulkRequest(start=pb.BulkStart(**fields)), receiver  # type: ignore[arg-type]


def test_a_replayed_request_id_is_refused(bulk_node: LiveNode, pki_dir: Path) -> None:
    stub = pb_grpc.MatchingStub(grpc.secure_channel(bulk_node.target, tls_for(pki_dir, "agency-a").credentials()))
    start, _ = bulk_start(bulk_node, [b"k1", b"k2"], request_id="same-id")
    replies = stub.BulkMatch(iter([start]), timeout=30)
    assert next(replies).WhichOneof("step") == "accepted"
    replies.cancel()
    start, _ = bulk_start(bulk_node, [b"k1", b"k2"], request_id="same-id")
    code, message = raw_calls.refusal(lambda: list(stub.BulkMatch(iter([start]), timeout=30)))
    assert code is grpc.StatusCode.ALREADY_EXISTS and "already used" in message
    assert bulk_node.node.store.budget_used("agency-a", 1) == 0  # accepted, cut before results: unpaid


def test_parameters_announce_the_bulk_suite(bulk_node: LiveNode, pki_dir: Path) -> None:
    with _client(bulk_node, pki_dir) as client:
        params = client.parameters()
    assert params.bulk_suite == core.SUITE and Mode.BULK not in params.modes  # old clients parse modes unchanged


def test_auto_picks_bulk_only_for_two_large_lists_without_a_warm_cache(bulk_node: LiveNode, pki_dir: Path) -> None:
    with _client(bulk_node, pki_dir) as client:
        params = client.parameters()
        assert client.choose_mode(LISTS.a)[0] is Mode.INTERSECTION
    big = dataclasses.replace(params, list_size=AUTO_MIN_CLIENT_RECORDS)
    assert choose_mode(AUTO_MIN_CLIENT_RECORDS, big, warm_tags=False)[0] is Mode.BULK
    assert choose_mode(AUTO_MIN_CLIENT_RECORDS, big, warm_tags=True) == (
        Mode.INTERSECTION, f"a tag cache of the partner's list is warm for key epoch {params.key_epoch}: "
                           "intersection mode fetches only the changes")
    assert choose_mode(AUTO_MIN_CLIENT_RECORDS - 1, big, warm_tags=False)[0] is Mode.INTERSECTION
    assert choose_mode(AUTO_MIN_CLIENT_RECORDS, dataclasses.replace(big, bulk_suite=""), False) == (
        Mode.INTERSECTION, "the partner does not offer bulk mode")


def test_a_warm_tag_cache_is_seen(bulk_node: LiveNode, pki_dir: Path, tmp_path: Path) -> None:
    with MatchClient(bulk_node.target, tls_for(pki_dir, "agency-a"), partner="agency-b",
                     cache_dir=tmp_path / "cache") as client:
        params = client.parameters()
        assert not client.warm_tags(params)
        client.match(LISTS.a[:3], purpose="p", case_reference="c")
        assert client.warm_tags(params)
    with MatchClient(bulk_node.target, tls_for(pki_dir, "agency-a"), partner="agency-b",
                     cache_dir=tmp_path / "cache") as fresh:
        assert fresh.warm_tags(params)  # from the cache on disk


def test_records_without_keys_make_no_call(bulk_node: LiveNode, pki_dir: Path) -> None:
    empty = [Record("e1", "Nobody Without A Date")]  # no date, no document: no key
    with _client(bulk_node, pki_dir) as client:
        result = client.bulk_match(empty, purpose="p", case_reference="c")
    assert (result.records, result.keys, result.hits) == (1, 0, ())
    assert _served(bulk_node) == []


def test_reflection_describes_bulk_match(bulk_node: LiveNode, pki_dir: Path) -> None:
    from google.protobuf import descriptor_pb2  # noqa: PLC0415
    from grpc_reflection.v1alpha import reflection_pb2  # noqa: PLC0415

    with grpc.secure_channel(bulk_node.target, tls_for(pki_dir, "agency-a").credentials()) as channel:
        call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        (reply,) = call(iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="psi.v1.Matching")]),
                        timeout=30)
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in reply.file_descriptor_response.file_descriptor_proto]
    (matching,) = [f for f in files if f.package == "psi.v1" and f.service]
    (bulk_match,) = [m for m in matching.service[0].method if m.name == "BulkMatch"]
    assert bulk_match.client_streaming and bulk_match.server_streaming
    assert bulk_match.input_type == ".psi.v1.BulkRequest" and bulk_match.output_type == ".psi.v1.BulkResponse"


def test_an_empty_list_gives_no_hits(start_node: Callable[..., LiveNode], pki_dir: Path) -> None:
    live = start_node([], partners=(), extra=agreements())
    with _client(live, pki_dir) as client:
        result = client.bulk_match(LISTS.a, purpose="p", case_reference="c")
    assert (result.hit_records, result.hits) == (0, ()) and result.keys > 0


def test_the_crypto_runs_on_a_pool_of_threads(tmp_path: Path, pki_dir: Path) -> None:
    """As `psi serve` runs it with the native core: the sender's steps on the server's worker threads."""
    config = make_config(tmp_path, pki_dir, "agency-b", partners=(), extra=agreements())
    import_records(config, LISTS.b, "test-operator")
    node = open_node(config)
    with WorkerPool(workers=2, threads=True) as pool:
        server, port = create_server(node, "127.0.0.1:0", max_workers=4, executor=pool)
        server.start()
        try:
            with MatchClient(f"127.0.0.1:{port}", tls_for(pki_dir, "agency-a"), partner="agency-b",
                             timeout=60) as client:
                assert client.bulk_match(LISTS.a, purpose="p", case_reference="c").hits == \
                    client.match(LISTS.a, purpose="p", case_reference="c").hits
        finally:
            server.stop(grace=None).wait()
            node.close()
