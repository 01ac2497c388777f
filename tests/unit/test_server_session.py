"""The server session refuses every out-of-protocol message before any group operation."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TypeVar

import pytest
import rbcl

from demo.synthetic import make_lists
from psi import oprf, workers
from psi.client_query import CardinalityQuery, IntersectionQuery
from psi.errors import (
    InputError,
    LimitExceededError,
    MalformedMessageError,
    OutOfOrderError,
    ParameterMismatchError,
    PsiError,
    StaleStateError,
)
from psi.executor import INLINE
from psi.messages import BlindedBatch, Done, EvaluatedBatch, Finish, Limits, Mode, Progress, SessionStart
from psi.profiles import EXACT_PROFILE
from psi.records import IdentityDocument, PartialDate, Record
from psi.server_session import ServerSession, run_evaluation
from tests.protocol_helpers import parameters_for, run_in_memory, snapshot_for

R = TypeVar("R")
KEY = oprf.generate_key()
LISTS = make_lists(30, 20, 8, seed=5)
LIMITS = Limits(max_batch_size=4, max_query_size=64)
SNAPSHOT = snapshot_for(KEY, LISTS.b, limits=LIMITS)
PARAMS = parameters_for(SNAPSHOT, len(LISTS.b), limits=LIMITS)


def _start(**changes: object) -> SessionStart:
    base = SessionStart("wanted", Mode.INTERSECTION, 1, EXACT_PROFILE.profile_id,
                        EXACT_PROFILE.definition_hash, 8, 1, "purpose", "case-1")
    return replace(base, **changes)  # type: ignore[arg-type]


def _elements(n: int) -> bytes:
    return b"".join(rbcl.crypto_core_ristretto255_random() for _ in range(n))


def _session() -> ServerSession:
    return ServerSession(KEY, PARAMS, "s")


def _evaluate(session: ServerSession, batch: BlindedBatch) -> EvaluatedBatch | Progress:
    job = session.batch(batch)
    return session.evaluated(job, run_evaluation(job))


@pytest.mark.parametrize(("start", "error", "message"), [
    (_start(purpose=""), InputError, "purpose"),
    (_start(case_reference=" "), InputError, "case reference"),
    (_start(profile_id="fuzzy/9"), ParameterMismatchError, "profile differs"),
    (_start(profile_hash=b"x" * 32), ParameterMismatchError, "profile differs"),
    (_start(key_epoch=2), StaleStateError, "epoch"),
    (_start(total_elements=0), InputError, "at least 1 element"),
    (_start(mode=Mode.CARDINALITY, group_size=3, total_elements=8), InputError, "group size"),
    (_start(mode=Mode.CARDINALITY, group_size=0), InputError, "group size"),
])
def test_bad_session_start(start: SessionStart, error: type[PsiError], message: str) -> None:
    with pytest.raises(error, match=message):
        _session().start(start)


def test_steps_out_of_order() -> None:
    session = _session()
    with pytest.raises(OutOfOrderError):
        _evaluate(session, BlindedBatch(0, _elements(1)))
    with pytest.raises(OutOfOrderError):
        session.finish(Finish())
    session.start(_start(total_elements=3))
    with pytest.raises(OutOfOrderError, match="already started"):
        session.start(_start())
    with pytest.raises(OutOfOrderError, match="expected batch 0"):
        _evaluate(session, BlindedBatch(1, _elements(1)))
    _evaluate(session, BlindedBatch(0, _elements(2)))
    with pytest.raises(OutOfOrderError, match="2 of 3"):
        session.finish(Finish())
    with pytest.raises(OutOfOrderError, match="expected batch 1"):
        _evaluate(session, BlindedBatch(0, _elements(1)))  # replayed batch
    _evaluate(session, BlindedBatch(1, _elements(1)))
    assert session.finish(Finish()) == [Done(3)]
    with pytest.raises(OutOfOrderError):
        _evaluate(session, BlindedBatch(2, _elements(1)))


@pytest.mark.parametrize(("elements", "error", "message"), [
    (_elements(1) + bytes(32), MalformedMessageError, "batch 0, element 1: element is the identity"),
    (b"\xff" * 32, MalformedMessageError, "batch 0, element 0: .*canonical"),
    (_elements(1)[:31], MalformedMessageError, "not a positive multiple of 32"),
    (b"", MalformedMessageError, "not a positive multiple"),
    (_elements(5), LimitExceededError, "limit is 4"),
])
def test_bad_batches(elements: bytes, error: type[PsiError], message: str) -> None:
    session = _session()
    session.start(_start(total_elements=8))
    with pytest.raises(error, match=message):
        _evaluate(session, BlindedBatch(0, elements))


def test_batch_past_announced_total() -> None:
    session = _session()
    session.start(_start(total_elements=2))
    with pytest.raises(LimitExceededError, match="announced total"):
        _evaluate(session, BlindedBatch(0, _elements(3)))


def test_cardinality_holds_evaluations_until_finish_and_shuffles_groups() -> None:
    query = CardinalityQuery(PARAMS, EXACT_PROFILE, LISTS.a[:10], purpose="p", case_reference="c")
    session = _session()
    session.start(query.start_message())
    replies = [_evaluate(session, b) for b in query.batches()]
    assert all(isinstance(r, Progress) for r in replies)
    final = session.finish(Finish())
    assert isinstance(final[-1], Done)
    batches = [r for r in final if isinstance(r, EvaluatedBatch)]
    size = query.group_size * 32
    assert all(len(b.elements) % size == 0 for b in batches)
    assert sum(len(b.elements) for b in batches) == query.total_elements * 32


def test_client_refuses_mismatched_parameters() -> None:
    with pytest.raises(ParameterMismatchError, match="suite"):
        IntersectionQuery(replace(PARAMS, suite="P256-SHA256"), EXACT_PROFILE, [], purpose="p",
                          case_reference="c")
    with pytest.raises(ParameterMismatchError, match="profile"):
        IntersectionQuery(replace(PARAMS, profile_hash=b"\0" * 32), EXACT_PROFILE, [], purpose="p",
                          case_reference="c")
    with pytest.raises(ParameterMismatchError, match="mode"):
        CardinalityQuery(replace(PARAMS, modes=(Mode.INTERSECTION,)), EXACT_PROFILE, [], purpose="p",
                         case_reference="c")


def test_client_refuses_unexpected_evaluations() -> None:
    query = IntersectionQuery(PARAMS, EXACT_PROFILE, LISTS.a[:3], purpose="p", case_reference="c")
    with pytest.raises(OutOfOrderError):
        query.receive(EvaluatedBatch(0, _elements(1)))
    batch = next(iter(query.batches()))
    with pytest.raises(MalformedMessageError):
        query.receive(EvaluatedBatch(0, batch.elements[:-32]))


def test_a_cardinality_query_refuses_more_evaluations_than_it_sent() -> None:
    query = CardinalityQuery(PARAMS, EXACT_PROFILE, LISTS.a[:3], purpose="p", case_reference="c")
    sent = b"".join(b.elements for b in query.batches())
    query.receive(EvaluatedBatch(0, sent))
    with pytest.raises(MalformedMessageError, match="goes past the"):
        query.receive(EvaluatedBatch(1, sent[:query.group_size * 32]))


class _SpyExecutor:
    """Runs every job inline, as an executor of `workers` would hand it out; records each job's size."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.sizes: list[int] = []

    def submit(self, fn: Callable[..., R], /, *args: object, size: int = 0) -> Future[R]:
        self.sizes.append(size)
        return INLINE.submit(fn, *args)


def test_a_query_submits_nothing_until_it_is_driven() -> None:
    spy = _SpyExecutor(2)
    queries = [query_type(PARAMS, EXACT_PROFILE, LISTS.a[:10], purpose="p", case_reference="c", executor=spy)
               for query_type in (IntersectionQuery, CardinalityQuery)]
    assert spy.sizes == [] and all(q.total_elements for q in queries)
    next(iter(queries[0].batches()))
    assert spy.sizes  # blinding starts with the first batch


def test_a_query_of_few_records_with_many_keys_blinds_on_the_workers() -> None:
    spy = _SpyExecutor(2)
    records = [Record(f"a-{i}", f"Person {i}", PartialDate(1970, 1, 1),
                      documents=tuple(IdentityDocument("PASSPORT", f"P{i}-{j}", "DEU") for j in range(40)))
               for i in range(60)]  # fewer records than any inline threshold, more keys than all of them
    query = IntersectionQuery(replace(PARAMS, limits=Limits()), EXACT_PROFILE, records, purpose="p",
                              case_reference="c", executor=spy)
    assert len(list(query.batches())) > 1
    pool = workers.WorkerPool(2)  # not started: only its threshold is asked
    assert query.total_elements >= workers.INLINE_BELOW and spy.sizes
    assert not any(pool.inline_for(size) for size in spy.sizes)  # sized by the query, not by the record


def test_an_abandoned_cardinality_query_leaves_little_work_behind() -> None:
    spy = _SpyExecutor(2)
    records = make_lists(3000, 10, 5, seed=3).a
    query = CardinalityQuery(replace(PARAMS, limits=Limits(max_batch_size=64)), EXACT_PROFILE, records,
                             purpose="p", case_reference="c", executor=spy)
    batches = query.batches()
    next(batches)
    batches.close()  # e.g. the partner refused the session after the first batch
    assert len(spy.sizes) <= 2 * spy.workers + 1  # of 47 batches: only those in flight were started


def test_synthetic_lists_match_exactly_in_both_modes() -> None:
    refs = {r.record_id: r.reference for r in LISTS.b}
    result = run_in_memory(LISTS.b, LISTS.a, Mode.INTERSECTION, limits=LIMITS, key=KEY)
    assert {(h.record_id, h.reference) for h in result.hits} == {(a, refs[b]) for a, b in LISTS.overlap}
    counted = run_in_memory(LISTS.b, LISTS.a, Mode.CARDINALITY, limits=LIMITS, key=KEY)
    assert counted.hit_records == len(LISTS.overlap)
    assert counted.hits == ()


def test_large_queries_give_the_same_result_looked_up_early_or_late() -> None:  # on workers: test_tag_cache_and_pool
    lists = make_lists(2500, 300, 120, seed=9)
    refs = {r.record_id: r.reference for r in lists.b}
    expected = {(a, refs[b]) for a, b in lists.overlap}
    for early_lookups in (False, True):
        result = run_in_memory(lists.b, lists.a, Mode.INTERSECTION, early_lookups=early_lookups)
        assert {(h.record_id, h.reference) for h in result.hits} == expected
    counted = run_in_memory(lists.b, lists.a, Mode.CARDINALITY)
    assert counted.hit_records == len({a for a, _ in lists.overlap})


def test_a_large_batch_is_evaluated_on_the_workers_and_errors_keep_their_index() -> None:
    elements = [rbcl.crypto_core_ristretto255_random() for _ in range(workers.INLINE_BELOW + 100)]
    session = ServerSession(KEY, replace(PARAMS, limits=Limits()), "s")
    session.start(_start(total_elements=2 * len(elements)))
    pool = workers.WorkerPool(2)
    try:
        job = session.batch(BlindedBatch(0, b"".join(elements)))
        assert len(job.slices) > 1 and pool.inline_for(job.count) is False
        reply = session.evaluated(job, run_evaluation(job, pool))
        assert reply == EvaluatedBatch(0, b"".join(oprf.blind_evaluate(KEY, e) for e in elements))
        bad = len(elements) - 3  # in the last slice
        elements[bad] = elements[bad][:31] + bytes([elements[bad][31] | 0x80])
        with pytest.raises(MalformedMessageError, match=f"batch 1, element {bad}: "):
            run_evaluation(session.batch(BlindedBatch(1, b"".join(elements))), pool)
    finally:
        pool.close()


def test_a_batch_waits_for_the_evaluation_of_the_one_before() -> None:
    session = _session()
    session.start(_start(total_elements=4))
    job = session.batch(BlindedBatch(0, _elements(2)))
    with pytest.raises(OutOfOrderError, match="before batch 0 was evaluated"):
        session.batch(BlindedBatch(1, _elements(2)))
    with pytest.raises(OutOfOrderError, match="not the one outstanding"):
        session.evaluated(job, b"")
    assert isinstance(session.evaluated(job, run_evaluation(job)), EvaluatedBatch)
