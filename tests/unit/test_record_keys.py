"""Bulk mode's key derivation on forked workers gives the keys a one-process derivation gives."""

from __future__ import annotations

import os

import pytest

import client.record_keys as record_keys_module
from client.record_keys import RecordKeys, record_keys
from psi.profiles import GOLDEN_RECORDS, PROFILES
from psi.records import IdentityDocument, PartialDate, Record

# The golden records (every script and corner the profiles know), then plain records, some keyless.
RECORDS = [*GOLDEN_RECORDS] + [
    Record(f"r{n}", f"Person{n % 7} Family{n % 11}",
           PartialDate(1960 + n % 40, 1 + n % 12, 1 + n % 28) if n % 5 else None,
           documents=(IdentityDocument("passport", f"P{n:06d}", "FRA"),) if n % 3 else ())
    for n in range(60)
]


def _columns(keys: RecordKeys) -> tuple[list[bytes], list[int], list[int], list[int]]:
    return keys.values, keys.holders.tolist(), keys.positions.tolist(), keys.rules.tolist()


def _one_record_at_a_time(profile_id: str) -> tuple[list[bytes], list[int], list[int], list[int]]:
    profile = PROFILES[profile_id]
    rows = [(value, index, position, rule) for index, record in enumerate(RECORDS)
            for position, (rule, value) in enumerate(profile.key_values(record))]
    values, holders, positions, rules = zip(*rows, strict=True)
    return list(values), list(holders), list(positions), list(rules)


@pytest.mark.parametrize("profile_id", sorted(PROFILES))
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_give_the_keys_of_one_record_after_another(profile_id: str, workers: int) -> None:
    assert _columns(record_keys(PROFILES[profile_id], RECORDS, workers=workers)) == _one_record_at_a_time(profile_id)


def test_rounds_give_the_keys_of_one_record_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_keys_module, "ROUND_RECORDS", 7)  # 82 records on 2 processes: 6 rounds
    profile_id = sorted(PROFILES)[-1]
    assert _columns(record_keys(PROFILES[profile_id], RECORDS, workers=2)) == _one_record_at_a_time(profile_id)


def test_a_failed_worker_leaves_its_slice_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_keys_module, "_worker", lambda *_: os._exit(3))
    profile_id = sorted(PROFILES)[0]
    assert _columns(record_keys(PROFILES[profile_id], RECORDS, workers=2)) == _one_record_at_a_time(profile_id)


def test_more_workers_than_records_and_no_records() -> None:
    profile = PROFILES[sorted(PROFILES)[0]]
    assert _columns(record_keys(profile, RECORDS[:1], workers=4)) == _columns(record_keys(profile, RECORDS[:1]))
    assert record_keys(profile, [], workers=2).values == []


def test_a_small_list_is_not_split() -> None:
    assert record_keys_module._default_workers(record_keys_module.MIN_RECORDS_PER_WORKER - 1) == 1
