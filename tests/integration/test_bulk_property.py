"""Property: on random lists, bulk mode's client (`client.bulk.BulkQuery`) over the server's payloads gives
exactly intersection mode's hits (records, references, categories, rules, strengths, follow-up keys).

In memory, without the network: the server's side is built as `Store.bulk_inputs` gives it (each entry's
match key, with `label_key ‖ sealed_label`)."""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from client.bulk import BulkQuery
from demo.synthetic import make_lists
from psi import bulk as core
from psi import oprf, tags
from psi.messages import BulkAccepted, BulkChunk, Mode
from psi.profiles import EXACT_PROFILE
from psi.records import Record
from tests.protocol_helpers import parameters_for, run_in_memory, snapshot_for

KEY = oprf.generate_key()


def bulk_in_memory(server: list[Record], client: list[Record], chunk: int) -> tuple[object, ...]:
    params = dataclasses.replace(parameters_for(snapshot_for(KEY, server), len(server)), bulk_suite=core.SUITE)
    entries = tags.prepare_records(server, KEY, EXACT_PROFILE)
    sender = core.BulkSender(core.sender_list([i[2] for i, _ in entries], [e[5] + e[4] for _, e in entries]),
                             max_receiver_items=10**6)
    query = BulkQuery(params, EXACT_PROFILE, client, purpose="p", case_reference="c", request_id="r")
    if query.items == 0:
        return ()
    setup = sender.setup(query.start_message().hello)
    accepted = BulkAccepted("s", params.key_epoch, setup, sender.correction_bytes, sender.result_count, 1, chunk)
    for correction in query.corrections(accepted):
        sender.absorb(correction.data)
    for index, data in enumerate(sender.results(chunk)):
        query.receive(BulkChunk(index, data))
    result = query.result()
    assert result.mode is Mode.BULK and result.keys == query.items
    return result.hits


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.tuples(st.integers(0, 25), st.integers(0, 25)), seed=st.integers(0, 10**6),
       twins=st.integers(0, 3), chunk=st.sampled_from([600, 4096, 1 << 16]))
def test_bulk_hits_are_intersection_hits(sizes: tuple[int, int], seed: int, twins: int, chunk: int) -> None:
    n_a, n_b = sizes
    lists = make_lists(n_a, n_b, min(n_a, n_b) // 2, seed=seed)
    # Records that share keys on either side: several partner references per key, several local records.
    server = [*lists.b, *(dataclasses.replace(r, record_id=f"t{i}", reference=f"T-{i}") for i, r in
                          enumerate(lists.b[:twins]))]
    client = [*lists.a, *(dataclasses.replace(r, record_id=f"c{i}") for i, r in enumerate(lists.a[:twins]))]
    expected = run_in_memory(server, client, Mode.INTERSECTION, key=KEY).hits if client else ()
    assert bulk_in_memory(server, client, chunk) == expected
