"""Write the protocol transcripts `transcript-exact-1-{intersection,cardinality}.json`.

    .venv/bin/python -m tests.vectors.make_transcripts

Every value comes from this project's code, with fixed inputs in place of randomness: the OPRF
key is DeriveKeyPair of a fixed seed, each blind is HashToScalar of a fixed string, and the
cardinality padding elements are HashToGroup of fixed strings. The one random value left is
the server's shuffle in cardinality mode: `server_output` is what a real `ServerSession`
returned, so a new run changes only that field. `tests/unit/test_transcripts.py` recomputes
every value along the production paths and compares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from psi import followup, group, oprf, tags
from psi.messages import PROTOCOL_VERSION, BlindedBatch, EvaluatedBatch, Finish, Limits, Mode, Parameters, SessionStart
from psi.profiles import EXACT_PROFILE, Profile
from psi.records import IdentityDocument, PartialDate, Record
from psi.server_session import ServerSession, run_evaluation
from psi.tagset import build_snapshot

HERE = Path(__file__).resolve().parent
E = group.ELEMENT_BYTES
PROFILE = EXACT_PROFILE
KEY_SEED = bytes(range(32))
KEY_INFO = b"psi-v1 transcript"
# Small limits, so that the transcripts show more than one batch.
LIMITS = Limits(max_batch_size=4, max_query_size=64, max_message_bytes=1 << 16)
PARTNER = "agency-a"  # the querying agency's certificate common name, bound into the follow-up proof

SERVER_RECORDS: list[dict[str, Any]] = [
    {"id": "b-1", "name": "Erika Mustermann", "birth_date": "1964-08-12",
     "documents": [["PASSPORT", "C01X00T47", "DEU"]], "reference": "B-REF-0001", "category": "wanted"},
    {"id": "b-2", "name": "Jan Kowalski", "birth_date": "1979-03",
     "documents": [], "reference": "B-REF-0002", "category": "missing"},
    {"id": "b-3", "name": "Marie Dupont", "birth_date": "1990-01-31",
     "documents": [["ID_CARD", "X4RTBPFW4", "FRA"]], "reference": "B-REF-0003", "category": "wanted"},
]
CLIENT_RECORDS: list[dict[str, Any]] = [
    # Both rules find b-1: one hit with two label keys (the follow-up proof uses the first rule's).
    {"id": "a-1", "name": "ERIKA  mustermann", "birth_date": "1964-08-12",
     "documents": [["passport", "c01x-00t4.7", "DEU"]], "reference": "", "category": ""},
    {"id": "a-2", "name": "Jan Kowalski", "birth_date": "1979-03", "documents": [], "reference": "", "category": ""},
    {"id": "a-3", "name": "Marie Dupont", "birth_date": "1990-02-01",  # another day: no hit
     "documents": [["ID_CARD", "X4RTBPFW5", "FRA"]], "reference": "", "category": ""},
    {"id": "a-4", "name": "Hans Meier", "birth_date": "", "documents": [], "reference": "", "category": ""},
]


def record_from_json(item: dict[str, Any]) -> Record:
    return Record(item["id"], item["name"],
                  PartialDate.parse(item["birth_date"]) if item["birth_date"] else None,
                  documents=tuple(IdentityDocument(*d) for d in item["documents"]),
                  reference=item["reference"], category=item["category"])


def key_pair() -> bytes:
    return oprf.derive_key_pair(KEY_SEED, KEY_INFO)[0]


def fixed_blind(name: str) -> bytes:
    return oprf.hash_to_scalar(b"psi-v1 transcript blind " + name.encode())


def padding_element(index: int) -> bytes:
    return oprf.hash_to_group(b"psi-v1 transcript padding " + str(index).encode())


def parameters(profile: Profile, tag_count: int, list_size: int) -> Parameters:
    return Parameters("agency-b", "wanted-persons", oprf.SUITE_ID, 1, 1, list_size, tag_count,
                      tags.tag_length(tag_count, LIMITS.max_query_size), profile.profile_id,
                      profile.definition_hash, (Mode.INTERSECTION, Mode.CARDINALITY), LIMITS)


def parameters_json(p: Parameters) -> dict[str, Any]:
    return {"protocol_version": PROTOCOL_VERSION, "suite": p.suite, "node_id": p.node_id, "list_id": p.list_id,
            "key_epoch": p.key_epoch, "list_version": p.list_version, "list_size": p.list_size,
            "tag_count": p.tag_count, "tag_length": p.tag_length, "profile_id": p.profile_id,
            "profile_hash": p.profile_hash.hex(), "modes": [m.value for m in p.modes],
            "limits": {"max_batch_size": p.limits.max_batch_size, "max_query_size": p.limits.max_query_size,
                       "max_message_bytes": p.limits.max_message_bytes}}


def start_json(start: SessionStart) -> dict[str, Any]:
    return {"list_id": start.list_id, "mode": start.mode.value, "key_epoch": start.key_epoch,
            "profile_id": start.profile_id, "profile_hash": start.profile_hash.hex(),
            "total_elements": start.total_elements, "group_size": start.group_size, "purpose": start.purpose,
            "case_reference": start.case_reference, "operator": start.operator, "request_id": start.request_id}


def server_side(key: bytes) -> tuple[list[Record], dict[str, Any], Parameters]:
    """The server's records, one entry per match key, and the published tag sets."""
    records = [record_from_json(r) for r in SERVER_RECORDS]
    entries = []
    for record in records:
        label = tags.encode_label(record.reference, record.category)
        for match_key in PROFILE.match_keys(record):
            output = oprf.evaluate(key, match_key.value)
            _, label_key = tags.split_output(output)
            evaluated = group.scalar_mult(key, oprf.input_element(match_key.value))
            entries.append({"record_id": record.record_id, "rule": match_key.rule_id, "key": match_key.value.hex(),
                            "output": output.hex(), "label_key": label_key.hex(), "label": label.hex(),
                            "sealed_label": tags.seal_label(label_key, label).hex(),
                            "cardinality_material": tags.cardinality_material(evaluated).hex()})
    params = parameters(PROFILE, len(entries), len(records))
    t = params.tag_length
    snap = build_snapshot(1, 1, t, [bytes.fromhex(e["output"])[:tags.TAG_MATERIAL_BYTES] for e in entries],
                          [bytes.fromhex(e["sealed_label"]) for e in entries],
                          [bytes.fromhex(e["cardinality_material"]) for e in entries])
    for e in entries:
        e["tag"] = e["output"][:2 * t]
        e["cardinality_tag"] = e["cardinality_material"][:2 * t]
    published = {
        "records": SERVER_RECORDS, "entries": entries,
        "intersection_tags": [snap.tags[i:i + t].hex() for i in range(0, len(snap.tags), t)],
        "intersection_labels": [label.hex() for label in snap.labels],
        "cardinality_tags": [snap.cardinality_tags[i:i + t].hex() for i in range(0, len(snap.cardinality_tags), t)],
    }
    return records, published, params


def batches_json(packed: list[bytes]) -> list[dict[str, Any]]:
    return [{"index": i, "elements": [b[j:j + E].hex() for j in range(0, len(b), E)]} for i, b in enumerate(packed)]


def intersection(key: bytes) -> dict[str, Any]:
    _, server, params = server_side(key)
    tag_of = {t: i for i, t in enumerate(server["intersection_tags"])}
    clients = [record_from_json(r) for r in CLIENT_RECORDS]
    keys: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for record in clients:
        for match_key in PROFILE.match_keys(record):
            blind, element = oprf.blind(match_key.value, fixed_blind(f"{record.record_id}/{match_key.rule_id}"))
            answer = oprf.blind_evaluate(key, element)
            output = oprf.finalize(match_key.value, blind, answer)
            keys.append({"record_id": record.record_id, "rule": match_key.rule_id, "key": match_key.value.hex(),
                         "blind": blind.hex(), "blinded_element": element.hex(), "evaluated_element": answer.hex()})
            position = tag_of.get(output[:params.tag_length].hex())
            opened = None if position is None else tags.open_label(
                output[32:], bytes.fromhex(server["intersection_labels"][position]))
            outputs.append({"record_id": record.record_id, "rule": match_key.rule_id, "output": output.hex(),
                            "tag": output[:params.tag_length].hex(), "label_key": output[32:].hex(),
                            "tag_position": position, "label": None if opened is None else opened.hex()})
    size = LIMITS.max_batch_size
    blinded = [bytes.fromhex(k["blinded_element"]) for k in keys]
    evaluated = [bytes.fromhex(k["evaluated_element"]) for k in keys]
    start = SessionStart(params.list_id, Mode.INTERSECTION, params.key_epoch, PROFILE.profile_id,
                         PROFILE.definition_hash, len(keys), 1, "transcript", "CASE-1", "officer-1", "req-1")
    hits: dict[tuple[str, str], dict[str, Any]] = {}
    for out in outputs:
        if out["label"] is None:
            continue
        reference, category = tags.decode_label(bytes.fromhex(out["label"]))
        hit = hits.setdefault((out["record_id"], reference), {
            "record_id": out["record_id"], "reference": reference, "category": category, "rules": [],
            "label_key": out["label_key"],  # of the first rule that found it, in profile rule order
        })
        hit["rules"].append(out["rule"])
    request_id = "followup-req-1"
    followups = []
    for hit in hits.values():
        fkey = followup.followup_key(bytes.fromhex(hit["label_key"]))
        hit["followup_key"] = fkey.hex()
        followups.append({"partner": PARTNER, "list_id": "", "reference": hit["reference"], "request_id": request_id,
                          "proof": followup.followup_proof(fkey, PARTNER, hit["reference"], request_id).hex()})
    return {
        "description": "psi.v1 intersection mode, profile exact/1: every value from fixed inputs",
        "oprf_key": {"seed": KEY_SEED.hex(), "info": KEY_INFO.hex(), "sk": key.hex()},
        "parameters": parameters_json(params), "server": server,
        "client": {"records": CLIENT_RECORDS, "keys": keys, "start": start_json(start),
                   "batches": batches_json([b"".join(blinded[i:i + size]) for i in range(0, len(blinded), size)])},
        "server_output": batches_json([b"".join(evaluated[i:i + size]) for i in range(0, len(evaluated), size)]),
        "client_result": {"outputs": outputs, "hits": list(hits.values())},
        "followups": followups,
    }


def cardinality(key: bytes) -> dict[str, Any]:
    _, server, params = server_side(key)
    clients = [record_from_json(r) for r in CLIENT_RECORDS]
    keyed = [PROFILE.match_keys(r) for r in clients]
    group_size = max(1, *map(len, keyed))
    blind = fixed_blind("cardinality")
    groups: list[dict[str, Any]] = []
    padding: list[bytes] = []
    for record, keys in zip(clients, keyed, strict=True):
        elements = [oprf.blind(k.value, blind)[1] for k in keys]
        for _ in range(group_size - len(keys)):
            padding.append(padding_element(len(padding)))
            elements.append(padding[-1])
        groups.append({"record_id": record.record_id, "keys": [{"rule": k.rule_id, "key": k.value.hex()} for k in keys],
                       "elements": [e.hex() for e in elements]})
    per_batch = max(1, LIMITS.max_batch_size // group_size)
    packed = [b"".join(bytes.fromhex(e) for g in groups[i:i + per_batch] for e in g["elements"])
              for i in range(0, len(groups), per_batch)]
    start = SessionStart(params.list_id, Mode.CARDINALITY, params.key_epoch, PROFILE.profile_id,
                         PROFILE.definition_hash, len(groups) * group_size, group_size, "transcript", "CASE-2",
                         "officer-1", "req-2")
    session = ServerSession(key, params, "transcript")
    session.start(start)
    for i, batch in enumerate(packed):
        job = session.batch(BlindedBatch(i, batch))
        session.evaluated(job, run_evaluation(job))
    shuffled = [m.elements for m in session.finish(Finish()) if isinstance(m, EvaluatedBatch)]
    inverse = group.invert_scalar(blind)
    present = set(server["cardinality_tags"])
    returned = [e for b in shuffled for e in (b[j:j + E] for j in range(0, len(b), E))]
    ctags = [tags.cardinality_material(group.scalar_mult_peer(inverse, e))[:params.tag_length].hex()
             for e in returned]
    hit_groups = sum(any(t in present for t in ctags[g:g + group_size]) for g in range(0, len(ctags), group_size))
    return {
        "description": "psi.v1 cardinality mode, profile exact/1: fixed inputs; server_output is one real "
                       "(randomly shuffled) server answer",
        "oprf_key": {"seed": KEY_SEED.hex(), "info": KEY_INFO.hex(), "sk": key.hex()},
        "parameters": parameters_json(params), "server": server,
        "client": {"records": CLIENT_RECORDS, "group_size": group_size, "blind": blind.hex(),
                   "padding_elements": [p.hex() for p in padding], "groups": groups, "start": start_json(start),
                   "batches": batches_json(packed)},
        "server_output": batches_json(shuffled),
        "client_result": {"cardinality_tags": ctags, "hit_groups": hit_groups},
    }


def main() -> None:
    key = key_pair()
    for name, transcript in (("intersection", intersection(key)), ("cardinality", cardinality(key))):
        path = HERE / f"transcript-exact-1-{name}.json"
        path.write_text(json.dumps(transcript, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
