"""What a bulk sender is built from: each stored entry with the match key it was computed from, and
label keys filled in for entries made before store schema 2 (at node start, tag data unchanged)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from agency.keys import ServerKey
from psi import oprf, tags
from psi.errors import StorageError
from psi.profiles import EXACT_PROFILE, STANDARD_PROFILE, Profile
from psi.records import IdentityDocument, PartialDate, Record
from server.app import open_node
from server.store import Store
from server.watchlist import import_records
from tests.conftest import make_config

KEY = ServerKey(1, oprf.generate_key())


def person(n: int) -> Record:
    """Two documents (two keys of one rule), names that give several keys under standard/5."""
    docs = (IdentityDocument("PASSPORT", f"P{n:07d}", "DEU"), IdentityDocument("ID", f"I{n:07d}", "FRA"))
    return Record(f"r{n:03d}", f"Jose Maria Garcia{n}", PartialDate(1970 + n % 30, 1 + n % 12, 1 + n % 28),
                  "DEU", docs, reference=f"REF-{n}", category="arrest", aliases=(f"Pepe Garcia{n}",))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "watchlist.sqlite")
    yield opened
    opened.close()


def expected(records: list[Record], key: ServerKey, profile: Profile) -> dict[bytes, list[bytes]]:
    """Match key value -> the payloads (label key ‖ sealed label) its entries must carry, computed afresh."""
    out: dict[bytes, list[bytes]] = defaultdict(list)
    for (_, _, value, _, _), (*_, sealed, label_key) in tags.prepare_records(records, key.secret, profile):
        out[value].append(label_key + sealed)
    return out


def pairs(store: Store, epoch: int) -> dict[bytes, list[bytes]]:
    inputs = store.bulk_inputs(epoch)
    out: dict[bytes, list[bytes]] = defaultdict(list)
    for value, payload in zip(inputs.keys, inputs.payloads, strict=True):
        out[value].append(payload)
    return out


@pytest.mark.parametrize("profile", [EXACT_PROFILE, STANDARD_PROFILE], ids=lambda p: p.profile_id)
def test_each_entry_comes_with_its_own_match_key(store: Store, profile: Profile) -> None:
    records = [person(n) for n in range(40)]
    store.upsert(records[:25], KEY, profile)
    store.upsert([*records[20:], person(3)], KEY, profile)  # updates and additions
    got, want = pairs(store, 1), expected(records, KEY, profile)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert store.bulk_inputs(1).list_version == store.list_version


def test_a_new_epoch_pairs_its_entries_too(store: Store) -> None:
    records = [person(n) for n in range(30)]
    store.upsert(records, KEY, EXACT_PROFILE)
    new = ServerKey(2, oprf.generate_key())
    store.fill_epoch(new, EXACT_PROFILE)
    assert {k: sorted(v) for k, v in pairs(store, 2).items()} == \
        {k: sorted(v) for k, v in expected(records, new, EXACT_PROFILE).items()}


def _forget_label_keys(store: Store, epoch: int) -> list[tuple[object, ...]]:
    """As a store migrated from schema 1 holds them; returns the entries' rows as they were."""
    rows = store.query("SELECT rowid, record_id, rule_id, tag_material, cardinality_material, sealed_label, "
                       "version, label_key FROM entries WHERE epoch=? ORDER BY rowid", (epoch,))
    with store.transaction() as db:
        db.execute("UPDATE entries SET label_key=NULL WHERE epoch=?", (epoch,))
    return rows


def test_backfill_restores_label_keys_and_changes_nothing_else(store: Store) -> None:
    store.upsert([person(n) for n in range(50)], KEY, EXACT_PROFILE)
    version = store.list_version
    before = _forget_label_keys(store, 1)
    assert store.missing_label_keys(1) == len(before)
    with pytest.raises(StorageError, match="lack their label key"):
        store.bulk_inputs(1)
    progress: list[tuple[int, int]] = []
    assert store.backfill_label_keys(KEY, lambda done, total: progress.append((done, total))) == len(before)
    assert progress[-1] == (len(before), len(before))
    assert store.query("SELECT rowid, record_id, rule_id, tag_material, cardinality_material, sealed_label, "
                       "version, label_key FROM entries WHERE epoch=1 ORDER BY rowid") == before
    assert store.list_version == version and store.missing_label_keys(1) == 0
    assert store.backfill_label_keys(KEY) == 0


def test_a_node_fills_in_label_keys_at_start(tmp_path: Path, pki_dir: Path) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    import_records(config, [person(n) for n in range(12)], "test-operator")
    store = Store(config.store_path)
    try:
        before = _forget_label_keys(store, 1)
    finally:
        store.close()
    node = open_node(config)
    try:
        assert node.store.missing_label_keys(1) == 0
        assert node.store.query("SELECT rowid, record_id, rule_id, tag_material, cardinality_material, "
                                "sealed_label, version, label_key FROM entries WHERE epoch=1 ORDER BY rowid") == before
        assert node.bulk_list(node.key).entries == len(before)
        # As older software writing beside a running node would leave them: a new list version.
        _forget_label_keys(node.store, 1)
        with node.store.transaction() as db:
            db.execute("UPDATE meta SET value=value+1 WHERE name='list_version'")
        assert node.bulk_list(node.key).entries == len(before)  # filled in when the list is built again
        assert node.store.missing_label_keys(1) == 0
    finally:
        node.close()
