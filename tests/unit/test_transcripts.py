"""The protocol transcripts in tests/vectors/ recomputed along the production paths, so they cannot drift.

The generator (`tests/vectors/make_transcripts.py`) works from the OPRF primitives; this test
takes only the transcript's inputs and runs the code a node and a client run: the tag
snapshot, the server session, the client's finalize, lookup and label opening, the follow-up
check of the answering node, and each mode's query state machine end to end.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agency.keys import ServerKey
from psi import followup, group, oprf, tags
from psi.client_query import CardinalityQuery, IntersectionQuery, finalize_values, unblind_materials
from psi.errors import PermissionDeniedError
from psi.messages import BlindedBatch, EvaluatedBatch, Finish, Mode, Parameters, Progress
from psi.profiles import EXACT_PROFILE
from psi.server_session import ServerSession, run_evaluation
from psi.tagset import TagIndex, build_snapshot
from server.followups import _proven_record
from tests.vectors.make_transcripts import LIMITS, record_from_json

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
E = group.ELEMENT_BYTES


def _load(mode: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((VECTORS / f"transcript-exact-1-{mode}.json").read_text())
    return loaded


INTERSECTION = _load("intersection")
CARDINALITY = _load("cardinality")
KEY = bytes.fromhex(INTERSECTION["oprf_key"]["sk"])


def _packed(batch: dict[str, Any]) -> bytes:
    return b"".join(bytes.fromhex(e) for e in batch["elements"])


def _parameters(t: dict[str, Any]) -> Parameters:
    p = t["parameters"]
    return Parameters(p["node_id"], p["list_id"], p["suite"], p["key_epoch"], p["list_version"], p["list_size"],
                      p["tag_count"], p["tag_length"], p["profile_id"], bytes.fromhex(p["profile_hash"]),
                      tuple(Mode(m) for m in p["modes"]), LIMITS)


def _start(t: dict[str, Any], mode: Mode, query: IntersectionQuery | CardinalityQuery) -> None:
    """The query's own start message matches the transcript's (total, group size, profile)."""
    ours = query.start_message()
    s = t["client"]["start"]
    assert (ours.mode, ours.total_elements, ours.group_size, ours.profile_id, ours.profile_hash.hex()) == (
        mode, s["total_elements"], s["group_size"], s["profile_id"], s["profile_hash"])


@pytest.mark.parametrize("t", [INTERSECTION, CARDINALITY], ids=["intersection", "cardinality"])
def test_key_parameters_and_published_tags(t: dict[str, Any]) -> None:
    key = oprf.derive_key_pair(bytes.fromhex(t["oprf_key"]["seed"]), bytes.fromhex(t["oprf_key"]["info"]))[0]
    assert key == KEY
    server = t["server"]
    records = [record_from_json(r) for r in server["records"]]
    prepared = tags.prepare_records(records, key, EXACT_PROFILE)
    entries = server["entries"]
    assert [(i[0], i[1], i[2].hex()) for i, _ in prepared] == [(e["record_id"], e["rule"], e["key"]) for e in entries]
    for ((_, _, value, _, label), (_, _, material, cmaterial, sealed, label_key)), e in zip(prepared, entries,
                                                                                            strict=True):
        output = oprf.evaluate(key, value)
        assert (output.hex(), output[32:].hex(), label.hex()) == (e["output"], e["label_key"], e["label"])
        assert label_key == output[32:]
        assert (material.hex(), cmaterial.hex(), sealed.hex()) == (e["output"][:64], e["cardinality_material"],
                                                                  e["sealed_label"])
    p = t["parameters"]
    assert (p["profile_id"], bytes.fromhex(p["profile_hash"])) == (EXACT_PROFILE.profile_id,
                                                                   EXACT_PROFILE.definition_hash)
    assert p["tag_length"] == tags.tag_length(p["tag_count"], p["limits"]["max_query_size"])
    assert (p["tag_count"], p["list_size"]) == (len(entries), len(records))
    length = p["tag_length"]
    snap = build_snapshot(1, 1, length, [m for _, (_, _, m, _, _, _) in prepared],
                          [s for _, (*_, s, _) in prepared], [c for _, (_, _, _, c, _, _) in prepared])
    assert snap.tags.hex() == "".join(server["intersection_tags"])
    assert [s.hex() for s in snap.labels] == server["intersection_labels"]
    assert snap.cardinality_tags.hex() == "".join(server["cardinality_tags"])
    assert [e["tag"] for e in entries] == [e["output"][:2 * length] for e in entries]


def test_intersection_transcript() -> None:
    t = INTERSECTION
    params = _parameters(t)
    keys = t["client"]["keys"]
    records = [record_from_json(r) for r in t["client"]["records"]]
    assert [(k["record_id"], k["rule"], k["key"]) for k in keys] == [
        (r.record_id, k.rule_id, k.value.hex()) for r in records for k in EXACT_PROFILE.match_keys(r)]
    for k in keys:
        assert oprf.blind(bytes.fromhex(k["key"]), bytes.fromhex(k["blind"]))[1].hex() == k["blinded_element"]
    assert [e for b in t["client"]["batches"] for e in b["elements"]] == [k["blinded_element"] for k in keys]
    assert all(len(b["elements"]) <= params.limits.max_batch_size for b in t["client"]["batches"])

    session = ServerSession(KEY, params, "s")
    query = IntersectionQuery(params, EXACT_PROFILE, records, purpose="p", case_reference="c")
    _start(t, Mode.INTERSECTION, query)
    session.start(query.start_message())
    for batch, answer in zip(t["client"]["batches"], t["server_output"], strict=True):
        job = session.batch(BlindedBatch(batch["index"], _packed(batch)))
        reply = session.evaluated(job, run_evaluation(job))
        assert isinstance(reply, EvaluatedBatch) and (reply.index, reply.elements) == (answer["index"], _packed(answer))

    evaluated = _packed({"elements": [e for b in t["server_output"] for e in b["elements"]]})
    blinds = b"".join(bytes.fromhex(k["blind"]) for k in keys)
    finalized = finalize_values([bytes.fromhex(k["key"]) for k in keys], blinds, evaluated)
    index = TagIndex(b"".join(bytes.fromhex(x) for x in t["server"]["intersection_tags"]), params.tag_length,
                     [bytes.fromhex(x) for x in t["server"]["intersection_labels"]])
    outputs = t["client_result"]["outputs"]
    for (material, label_key), positions, out in zip(finalized, index.find([m for m, _ in finalized]), outputs,
                                                     strict=True):
        assert (material.hex(), label_key.hex()) == (out["output"][:64], out["label_key"])
        assert list(positions) == ([] if out["tag_position"] is None else [out["tag_position"]])
        opened = tags.open_label(label_key, index.label(positions[0])) if positions else None
        assert (opened.hex() if opened else None) == out["label"]

    # The query state machine, with its own random blinds, finds the same hits and follow-up keys.
    for reply in _run(ServerSession(KEY, params, "s2"), query):
        query.receive(reply)
    result = query.result(index)
    assert [(h.record_id, h.reference, h.category, list(h.rules), h.followup_key.hex()) for h in result.hits] == [
        (h["record_id"], h["reference"], h["category"], h["rules"], h["followup_key"])
        for h in t["client_result"]["hits"]]


def _run(session: ServerSession, query: IntersectionQuery | CardinalityQuery) -> list[EvaluatedBatch]:
    session.start(query.start_message())
    out = [session.evaluated(job, run_evaluation(job)) for job in map(session.batch, query.batches())]
    return [m for m in (*out, *session.finish(Finish())) if isinstance(m, EvaluatedBatch)]


def test_followup_proofs_are_accepted_with_either_label_key_of_a_hit() -> None:
    t = INTERSECTION
    server_records = [record_from_json(r) for r in t["server"]["records"]]
    hits = {h["reference"]: h for h in t["client_result"]["hits"]}
    for request in t["followups"]:
        hit = hits[request["reference"]]
        fkey = followup.followup_key(bytes.fromhex(hit["label_key"]))
        assert fkey.hex() == hit["followup_key"]
        proof = followup.followup_proof(fkey, request["partner"], request["reference"], request["request_id"])
        assert proof.hex() == request["proof"]
        fields = {**request, "proof": proof}
        proven = _proven_record(request["partner"], ServerKey(1, KEY), EXACT_PROFILE, server_records, fields)
        assert proven.reference == request["reference"]
        # Any rule's label key of the same hit proves it too; another partner's name does not.
        for out in t["client_result"]["outputs"]:
            if out["record_id"] == hit["record_id"] and out["label"]:
                other = followup.followup_key(bytes.fromhex(out["label_key"]))
                fields["proof"] = followup.followup_proof(other, request["partner"], request["reference"],
                                                          request["request_id"])
                assert _proven_record(request["partner"], ServerKey(1, KEY), EXACT_PROFILE, server_records, fields)
        fields["proof"] = followup.followup_proof(fkey, "agency-c", request["reference"], request["request_id"])
        with pytest.raises(PermissionDeniedError):
            _proven_record(request["partner"], ServerKey(1, KEY), EXACT_PROFILE, server_records, fields)


def test_cardinality_transcript() -> None:
    t = CARDINALITY
    params = _parameters(t)
    client = t["client"]
    records = [record_from_json(r) for r in client["records"]]
    size = client["group_size"]
    keyed = [EXACT_PROFILE.match_keys(r) for r in records]
    assert size == max(1, *map(len, keyed))  # the most keys of one record
    blind = bytes.fromhex(client["blind"])
    padding = iter(client["padding_elements"])
    for g, record, keys in zip(client["groups"], records, keyed, strict=True):
        assert g["record_id"] == record.record_id and [k["key"] for k in g["keys"]] == [k.value.hex() for k in keys]
        expected = [oprf.blind(k.value, blind)[1].hex() for k in keys]
        assert g["elements"] == expected + [next(padding) for _ in range(size - len(keys))]
    assert next(padding, None) is None
    per_batch = params.limits.max_batch_size // size  # whole groups per batch
    assert [b["elements"] for b in client["batches"]] == [
        [e for g in client["groups"][i:i + per_batch] for e in g["elements"]]
        for i in range(0, len(client["groups"]), per_batch)]

    query = CardinalityQuery(params, EXACT_PROFILE, records, purpose="p", case_reference="c")
    _start(t, Mode.CARDINALITY, query)
    session = ServerSession(KEY, params, "s")
    session.start(query.start_message())
    evaluated_groups: list[list[str]] = []
    for batch in client["batches"]:
        job = session.batch(BlindedBatch(batch["index"], _packed(batch)))
        out = run_evaluation(job)
        assert isinstance(session.evaluated(job, out), Progress)
        elements = [out[j:j + E].hex() for j in range(0, len(out), E)]
        evaluated_groups += [elements[i:i + size] for i in range(0, len(elements), size)]

    # The server's answer is shuffled at random: the recorded one holds the same groups, each the same elements.
    returned = [e for b in t["server_output"] for e in b["elements"]]
    assert all(len(b["elements"]) % size == 0 for b in t["server_output"])
    assert Counter(tuple(sorted(returned[i:i + size])) for i in range(0, len(returned), size)) == Counter(
        tuple(sorted(g)) for g in evaluated_groups)
    inverse = group.invert_scalar(blind)
    ctags = [m[:params.tag_length].hex() for b in t["server_output"] for m in unblind_materials(inverse, _packed(b))]
    assert ctags == t["client_result"]["cardinality_tags"]

    # The query state machine, with its own blind and padding, counts the same.
    index = TagIndex(b"".join(bytes.fromhex(x) for x in t["server"]["cardinality_tags"]), params.tag_length)
    for reply in _run(ServerSession(KEY, params, "s2"), query):
        query.receive(reply)
    assert query.result(index).hit_records == t["client_result"]["hit_groups"]
    present = set(t["server"]["cardinality_tags"])
    assert t["client_result"]["hit_groups"] == sum(any(c in present for c in ctags[g:g + size])
                                                   for g in range(0, len(ctags), size))
