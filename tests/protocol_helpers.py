"""Run the pure protocol end to end in memory (no network), for unit and property tests."""

from __future__ import annotations

from collections.abc import Sequence

from psi import oprf, tags
from psi.client_query import CardinalityQuery, IntersectionQuery, MatchResult
from psi.messages import EvaluatedBatch, Finish, Limits, Mode, Parameters
from psi.profiles import EXACT_PROFILE, Profile
from psi.records import Record
from psi.server_session import ServerSession, run_evaluation
from psi.tagset import TagIndex, TagSnapshot, build_snapshot


def snapshot_for(key: bytes, records: Sequence[Record], profile: Profile = EXACT_PROFILE,
                 limits: Limits = Limits()) -> TagSnapshot:
    entries = [entry for _, entry in tags.prepare_records(list(records), key, profile)]
    length = tags.tag_length(len(entries), limits.max_query_size)
    return build_snapshot(1, 1, length, [material for _, _, material, _, _, _ in entries],
                          [sealed for *_, sealed, _ in entries], [cmaterial for _, _, _, cmaterial, _, _ in entries])


def parameters_for(snapshot: TagSnapshot, list_size: int, profile: Profile = EXACT_PROFILE,
                   limits: Limits = Limits()) -> Parameters:
    return Parameters("node-b", "wanted", oprf.SUITE_ID, snapshot.key_epoch, snapshot.list_version,
                      list_size, snapshot.count, snapshot.tag_length, profile.profile_id,
                      profile.definition_hash, (Mode.INTERSECTION, Mode.CARDINALITY), limits)


def run_in_memory(server_records: Sequence[Record], client_records: Sequence[Record], mode: Mode,
                  limits: Limits = Limits(), key: bytes | None = None, *, early_lookups: bool = False) -> MatchResult:
    """With `early_lookups`, finalized batches are looked up as evaluations arrive, as the gRPC client does."""
    key = key or oprf.generate_key()
    snapshot = snapshot_for(key, server_records, limits=limits)
    params = parameters_for(snapshot, len(server_records), limits=limits)
    if mode is Mode.INTERSECTION:
        index = TagIndex(snapshot.tags, snapshot.tag_length, snapshot.labels)
        query: IntersectionQuery | CardinalityQuery = IntersectionQuery(
            params, EXACT_PROFILE, client_records, purpose="test", case_reference="T-1")
    else:
        index = TagIndex(snapshot.cardinality_tags, snapshot.tag_length)
        query = CardinalityQuery(params, EXACT_PROFILE, client_records, purpose="test", case_reference="T-1")
    session = ServerSession(key, params, "s-1")
    session.start(query.start_message())
    replies = [*(session.evaluated(job, run_evaluation(job)) for job in map(session.batch, query.batches())),
               *session.finish(Finish())]
    for reply in replies:
        if isinstance(reply, EvaluatedBatch):
            query.receive(reply)
            if early_lookups and isinstance(query, IntersectionQuery):
                query.look_up(index)
    return query.result(index)
