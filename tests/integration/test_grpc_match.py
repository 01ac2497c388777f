"""A real gRPC server on 127.0.0.1 with mutual TLS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from client.api import ClientTls, MatchClient
from demo.synthetic import make_lists
from psi import tags
from psi.errors import ParameterMismatchError, RemoteError
from psi.messages import Mode
from psi.profiles import STANDARD_PROFILE, Profile, Strength
from psi.records import PartialDate, Record
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from server.watchlist import erase_records, import_records
from tests.conftest import LiveNode, tls_for

LISTS = make_lists(300, 250, 60, seed=11)
REFS = {r.record_id: r.reference for r in (*LISTS.a, *LISTS.b)}
StartNode = Callable[..., LiveNode]
Connect = Callable[..., MatchClient]


def _channel(live: LiveNode, tls: ClientTls) -> grpc.Channel:
    return grpc.secure_channel(live.target, tls.credentials())


def test_intersection_and_cardinality_over_mutual_tls(start_node: StartNode, client_for: Connect) -> None:
    live = start_node(LISTS.b)
    client = client_for(live)
    params = client.parameters()
    assert (params.node_id, params.list_size, params.suite) == ("agency-b", 250, "ristretto255-SHA512")
    progress: list[tuple[str, int, int]] = []
    result = client.match(LISTS.a, purpose="test", case_reference="IT-1", operator="officer-1",
                          progress=lambda *event: progress.append(event))
    assert {(h.record_id, h.reference) for h in result.hits} == {(a, REFS[b]) for a, b in LISTS.overlap}
    assert result.hit_records == len(LISTS.overlap)
    assert {stage for stage, _, _ in progress} == {"tags", "evaluate"}
    assert ("evaluate", result.keys, result.keys) in progress
    counted = client.match(LISTS.a, purpose="test", case_reference="IT-2", mode=Mode.CARDINALITY)
    assert (counted.hit_records, counted.hits) == (len(LISTS.overlap), ())


def test_empty_server_list_gives_no_hits(start_node: StartNode, client_for: Connect) -> None:
    result = client_for(start_node([])).match(LISTS.a[:20], purpose="p", case_reference="c")
    assert result.hits == () and result.hit_records == 0


def test_list_updates_are_seen_by_the_next_query(start_node: StartNode, client_for: Connect) -> None:
    live = start_node(LISTS.b[:100])
    client = client_for(live)
    first = client.match(LISTS.a, purpose="p", case_reference="c")
    import_records(live.config, LISTS.b[100:], "test-operator")
    second = client.match(LISTS.a, purpose="p", case_reference="c")
    assert len(second.hits) == len(LISTS.overlap) >= len(first.hits)
    assert client.parameters().list_size == 250


def test_tag_stream_resumes_from_an_offset(start_node: StartNode, pki_dir: Path) -> None:
    live = start_node(LISTS.b)
    with _channel(live, tls_for(pki_dir, "agency-a")) as channel:
        stub = pb_grpc.MatchingStub(channel)
        params = stub.GetParameters(pb.GetParametersRequest())
        full = b"".join(c.tags for c in stub.StreamTags(pb.StreamTagsRequest(
            mode=pb.MODE_INTERSECTION, key_epoch=params.key_epoch)))
        tail = list(stub.StreamTags(pb.StreamTagsRequest(
            mode=pb.MODE_INTERSECTION, key_epoch=params.key_epoch, list_version=params.list_version,
            offset=100)))
        assert tail[0].offset == 100
        assert b"".join(c.tags for c in tail) == full[100 * params.tag_length:]
        assert len(full) == params.tag_count * params.tag_length
        with pytest.raises(grpc.RpcError) as stale:
            list(stub.StreamTags(pb.StreamTagsRequest(mode=pb.MODE_INTERSECTION,
                                                      key_epoch=params.key_epoch + 1)))
        assert stale.value.code() is grpc.StatusCode.ABORTED
        with pytest.raises(grpc.RpcError) as changed:
            list(stub.StreamTags(pb.StreamTagsRequest(mode=pb.MODE_INTERSECTION, key_epoch=params.key_epoch,
                                                      list_version=params.list_version + 5, offset=3)))
        assert changed.value.code() is grpc.StatusCode.ABORTED


def test_health_and_reflection_services(start_node: StartNode, pki_dir: Path) -> None:
    live = start_node(LISTS.b[:5])
    with _channel(live, tls_for(pki_dir, "agency-a")) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="psi.v1.Matching"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = list(reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            list_services="")])))
        names = {s.name for s in answers[0].list_services_response.service}
        assert {"psi.v1.Matching", "grpc.health.v1.Health"} <= names


def test_client_refuses_a_server_with_another_profile(start_node: StartNode, client_for: Connect) -> None:
    live = start_node(LISTS.b[:5])
    other = Profile("exact/1", live.config.profile.rules[:1])
    with pytest.raises(ParameterMismatchError, match="profile differs"):
        client_for(live).match(LISTS.a[:5], purpose="p", case_reference="c", profile=other)


def test_remote_errors_carry_status_and_details(start_node: StartNode, client_for: Connect) -> None:
    client = client_for(start_node(LISTS.b[:5]))
    with pytest.raises(RemoteError) as refused:
        client.parameters("no-such-list")
    assert refused.value.status == "NOT_FOUND"
    assert "no-such-list" in refused.value.details


def test_an_update_recomputes_only_the_changed_records(start_node: StartNode, client_for: Connect,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    live = start_node(LISTS.b)
    client = client_for(live)
    client.match(LISTS.a, purpose="p", case_reference="c")
    changed = [replace(r, reference=r.reference + "-v2") for r in LISTS.b[:3]]  # ~1% of the list
    evaluated: list[bytes] = []
    original = tags.epoch_entries
    monkeypatch.setattr(tags, "epoch_entries", lambda inputs, key: (
        evaluated.extend(value for _, _, value, _, _ in inputs), original(inputs, key))[1])
    report = import_records(live.config, changed, "test-operator")
    assert (report.added, report.updated) == (0, 3)
    assert sorted(evaluated) == sorted(k.value for r in changed for k in live.config.profile.match_keys(r))
    assert report.match_keys == len(evaluated)
    after = client.match(LISTS.a, purpose="p", case_reference="c")
    refs = {r.record_id: r.reference for r in (*changed, *LISTS.b[3:])}
    assert {(h.record_id, h.reference) for h in after.hits} == {(a, refs[b]) for a, b in LISTS.overlap}


def _tag_streams(live: LiveNode) -> list[int]:
    """The `since_version` of every tag stream the node serves from now on (0: the whole set)."""
    served: list[int] = []
    original = live.node.audit.append
    live.node.audit.append = lambda body: (served.append(body.get("since_version", -1))  # type: ignore[method-assign]
                                           if body["operation"] == "tags.served" else None, original(body))[1]
    return served


def test_cached_tag_sets_fetch_only_the_changes(start_node: StartNode, client_for: Connect, pki_dir: Path,
                                                tmp_path: Path) -> None:
    live = start_node(LISTS.b)
    served = _tag_streams(live)
    with MatchClient(live.target, tls_for(pki_dir, "agency-a"), cache_dir=tmp_path / "cache") as client:
        first = client.match(LISTS.a, purpose="p", case_reference="c")
        again = client.match(LISTS.a, purpose="p", case_reference="c")
        assert served == [0] and again.hits == first.hits  # unchanged list: no tags sent again
        changed = [replace(r, reference=r.reference + "-v2") for r in LISTS.b[:3]]
        import_records(live.config, changed, "test-operator")
        version = client.parameters().list_version
        after = client.match(LISTS.a, purpose="p", case_reference="c")
        assert served == [0, version - 1]  # only the changes since the cached version
        refs = {r.record_id: r.reference for r in (*changed, *LISTS.b[3:])}
        assert {(h.record_id, h.reference) for h in after.hits} == {(a, refs[b]) for a, b in LISTS.overlap}
        erase_records(live.config, [b for _, b in sorted(LISTS.overlap)[:5]], "test-operator")
        erased = client.match(LISTS.a, purpose="p", case_reference="c")
        assert len(erased.hits) == len(LISTS.overlap) - 5
        counted = client.match(LISTS.a, purpose="p", case_reference="c", mode=Mode.CARDINALITY)
        assert counted.hit_records == len(LISTS.overlap) - 5


def test_a_new_client_starts_from_the_disk_cache(start_node: StartNode, pki_dir: Path, tmp_path: Path) -> None:
    live = start_node(LISTS.b)
    served = _tag_streams(live)

    def new_client() -> MatchClient:
        return MatchClient(live.target, tls_for(pki_dir, "agency-a"), cache_dir=tmp_path / "cache")

    with new_client() as client:
        first = client.match(LISTS.a, purpose="p", case_reference="c")
    with new_client() as client:  # labels opened straight from the file's packed buffer
        again = client.match(LISTS.a, purpose="p", case_reference="c")
    assert served == [0] and again.hits == first.hits
    erase_records(live.config, [b for _, b in sorted(LISTS.overlap)[:5]], "test-operator")
    with new_client() as client:  # the changes merged into the set read from the file
        version = client.parameters().list_version
        erased = client.match(LISTS.a, purpose="p", case_reference="c")
    assert served == [0, version - 1]
    assert {(h.record_id, h.reference) for h in erased.hits} == {
        (a, REFS[b]) for a, b in sorted(LISTS.overlap)[5:]}


def test_a_record_changed_twice_between_syncs_reaches_a_cached_client(
        start_node: StartNode, pki_dir: Path, tmp_path: Path) -> None:
    live = start_node(LISTS.b)
    expected = {(a, REFS[b]) for a, b in LISTS.overlap}
    with MatchClient(live.target, tls_for(pki_dir, "agency-a"), cache_dir=tmp_path / "cache") as client:
        client.match(LISTS.a, purpose="p", case_reference="c")
        for _ in range(2):  # identical entries removed and added twice: the partner held only the first
            import_records(live.config, LISTS.b[:3], "test-operator")
        again = client.match(LISTS.a, purpose="p", case_reference="c")
        assert {(h.record_id, h.reference) for h in again.hits} == expected
        assert len(client.fetch_tags(client.parameters(), Mode.INTERSECTION)) == client.parameters().tag_count


def test_a_change_of_profile_recomputes_the_stored_match_keys(start_node: StartNode, client_for: Connect) -> None:
    wanted = Record("b-1", "Ельцин Борис Николаевич", PartialDate(1931, 2, 1), reference="RU-77", category="arrest")
    ours = [Record("a-1", "Boris Nikolayevich Yeltsin", PartialDate(1931, 2, 1))]
    exact = start_node([wanted])
    assert client_for(exact).match(ours, purpose="p", case_reference="c").hits == ()
    exact.server.stop(grace=None).wait()
    exact.node.close()
    standard = start_node([], profile="standard/5")  # the same data directory, now under standard/5
    (hit,) = client_for(standard).match(ours, purpose="p", case_reference="c").hits
    assert (hit.record_id, hit.reference) == ("a-1", "RU-77")
    assert standard.node.parameters().tag_count == len(STANDARD_PROFILE.match_keys(wanted))


def test_standard_profile_finds_a_cross_script_pair_the_exact_one_misses(
        start_node: StartNode, client_for: Connect) -> None:
    wanted = Record("b-1", "Ельцин Борис Николаевич", PartialDate(1931, 2, 1), reference="RU-77", category="arrest")
    other = Record("b-2", "Иванов Иван", PartialDate(1960, 5, 5), reference="RU-78", category="witness")
    ours = [Record("a-1", "Boris Nikolayevich Yeltsin", PartialDate(1931, 2, 1)),
            Record("a-2", "Jan Novak", PartialDate(1960, 5, 5))]
    exact = client_for(start_node([wanted, other], node_id="agency-b"))
    assert exact.match(ours, purpose="p", case_reference="c").hits == ()
    standard_node = start_node([wanted, other], node_id="agency-a", profile="standard/5")
    result = client_for(standard_node, "agency-b").match(ours, purpose="p", case_reference="c",
                                                         profile=STANDARD_PROFILE)
    (hit,) = result.hits
    assert (hit.record_id, hit.reference, hit.strength) == ("a-1", "RU-77", Strength.MEDIUM)
    assert {"code-dob", "skeleton-dob", "skeleton-year"} <= set(hit.rules)
