"""The client's tag cache file, and the worker pool: streaming and recovery."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from client.tag_cache import CachedTags, TagCache
from demo.synthetic import make_lists
from psi import oprf
from psi.client_query import CardinalityQuery, IntersectionQuery, MatchResult
from psi.executor import map_stream
from psi.messages import EvaluatedBatch, Mode
from psi.profiles import EXACT_PROFILE
from psi.tagset import TagIndex
from psi.workers import WorkerPool
from tests.protocol_helpers import parameters_for, snapshot_for

BIG = 1 << 20  # a job size no executor runs inline


def test_a_cached_set_reads_back_as_written(tmp_path: Path) -> None:
    cache = TagCache(tmp_path)
    labelled = CachedTags("node-b", "wanted", Mode.INTERSECTION, 3, 17, 4, b"aaaabbbbcccc", (b"x", b"", b"\x00yz"))
    counted = CachedTags("node-b", "wanted", Mode.CARDINALITY, 3, 17, 4, b"aaaabbbb", ())
    for cached in (labelled, counted):
        cache.save(cached)
        assert cache.load("node-b", "wanted", cached.mode) == cached
    loaded = cache.load("node-b", "wanted", Mode.INTERSECTION)
    assert loaded is not None
    assert (list(loaded.labels), loaded.labels[1:], loaded.labels[-1]) == ([b"x", b"", b"\x00yz"], [b"", b"\x00yz"],
                                                                           b"\x00yz")
    assert (tmp_path / "node-b__wanted__intersection.tags").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("damage", [
    lambda data: data[:-1],  # truncated label
    lambda data: data[:40],  # truncated tags
    lambda data: b"1\n" + data.partition(b"\n")[2],  # a header that is not an object
    lambda data: b"[]\n" + data.partition(b"\n")[2],
    lambda data: data.replace(b'"count": 3', b'"count": 99999999999999999999'),
    lambda data: data.replace(b'"format": 2', b'"format": 1'),
    lambda data: b"",
])
def test_a_damaged_cache_file_is_fetched_again(tmp_path: Path, damage: object) -> None:
    cache = TagCache(tmp_path)
    cache.save(CachedTags("n", "l", Mode.INTERSECTION, 1, 2, 4, b"aaaabbbbcccc", (b"x1", b"x2", b"x3")))
    path = tmp_path / "n__l__intersection.tags"
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    assert cache.load("n", "l", Mode.INTERSECTION) is None


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    running = WorkerPool(2, threads=False)  # the process pool, whichever backend is active
    running.start()
    yield running
    running.close()


def test_the_pool_recovers_after_a_worker_dies(pool: WorkerPool) -> None:
    with pytest.raises(BrokenProcessPool):
        pool.submit(os._exit, 1, size=BIG).result(timeout=60)  # as if the kernel killed a worker
    assert pool.submit(abs, -3, size=BIG).result(timeout=60) == 3


def test_a_stream_of_parts_is_mapped_on_the_workers_in_order(pool: WorkerPool) -> None:
    read: list[int] = []

    def parts() -> Iterator[list[int]]:
        for i in range(20):
            read.append(i)
            yield list(range(i * 3 + 2, i * 3 - 1, -1))

    results = map_stream(pool, sorted, parts(), size=BIG)
    assert next(results) == [0, 1, 2]
    assert len(read) < 20  # the source is read as the workers go, not all at once
    assert list(results) == [list(range(i * 3, i * 3 + 3)) for i in range(1, 20)]


def _run(query: IntersectionQuery | CardinalityQuery, key: bytes, index: TagIndex) -> MatchResult:
    """Drive `query` as the client does, with every batch evaluated (unshuffled) right here."""
    for batch in query.batches():
        evaluated = b"".join(oprf.blind_evaluate(key, batch.elements[i:i + 32])
                             for i in range(0, len(batch.elements), 32))
        query.receive(EvaluatedBatch(batch.index, evaluated))
        if isinstance(query, IntersectionQuery):
            query.look_up(index)
    return query.result(index)


def test_queries_on_the_workers_give_the_inline_result(pool: WorkerPool) -> None:
    lists = make_lists(2500, 300, 120, seed=9)  # over INLINE_BELOW keys: jobs go to the workers
    key = oprf.generate_key()
    snapshot = snapshot_for(key, lists.b)
    params = parameters_for(snapshot, len(lists.b))
    refs = {r.record_id: r.reference for r in lists.b}
    labelled = TagIndex(snapshot.tags, snapshot.tag_length, snapshot.labels)
    found = _run(IntersectionQuery(params, EXACT_PROFILE, lists.a, purpose="p", case_reference="c",
                                   executor=pool), key, labelled)
    assert {(h.record_id, h.reference) for h in found.hits} == {(a, refs[b]) for a, b in lists.overlap}
    assert not pool.inline_for(found.keys)
    counted = _run(CardinalityQuery(params, EXACT_PROFILE, lists.a, purpose="p", case_reference="c",
                                    executor=pool), key, TagIndex(snapshot.cardinality_tags, snapshot.tag_length))
    assert counted.hit_records == len({a for a, _ in lists.overlap})
