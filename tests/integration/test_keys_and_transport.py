"""Key rotation while serving, and the loopback-only plaintext mode."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from agency.audit.chain import Verifier
from agency.audit.verify import verify_log
from agency.config import load_config
from agency.file_lock import locked
from agency.keys import ServerKey, create_key, load_key, public_key_path
from cli.main import main
from client.api import MatchClient
from demo.synthetic import make_lists
from psi import oprf
from psi.errors import ConfigurationError, RemoteError
from psi.records import IdentityDocument, PartialDate, Record
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from server import store as store_module
from server.app import create_server, open_node
from server.rotation import rotate_key
from server.store import Store
from server.watchlist import import_records
from tests.conftest import LiveNode, make_config

LISTS = make_lists(150, 120, 25, seed=41)
REFS = {r.record_id: r.reference for r in LISTS.b}


def test_rotation_while_serving(start_node: Callable[..., LiveNode], client_for: Callable[..., MatchClient],
                                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    live = start_node(LISTS.b)
    client = client_for(live)
    first = client.match(LISTS.a, purpose="p", case_reference="c")
    old_params = client.parameters()
    assert live.node.store.budget_used("agency-a", 1) == first.keys
    config_file = live.config.data_dir.parent / "agency-b.toml"
    with monkeypatch.context() as patched:  # a new epoch starts from the stored group elements
        patched.setattr(oprf, "input_element", lambda data: pytest.fail("HashToGroup during a rotation"))
        assert main(["keys", "rotate", "--config", str(config_file), "--operator", "admin-1", "--quiet"]) == 0
    assert "key epoch 1 -> 2" in capsys.readouterr().out
    assert load_key(live.config.key_path).epoch == 2
    params = client.parameters()
    assert (params.key_epoch, params.tag_count) == (2, old_params.tag_count)
    with pytest.raises(RemoteError) as stale:  # a client still on epoch 1 is told to start again
        client_for(live).fetch_tags(old_params, first.mode)
    assert stale.value.status == "ABORTED"
    second = client.match(LISTS.a, purpose="p", case_reference="c")
    assert {(h.record_id, h.reference) for h in second.hits} == {(a, REFS[b]) for a, b in LISTS.overlap}
    assert live.node.store.budget_used("agency-a", 2) == second.keys  # budgets are per epoch
    store = Store(live.config.store_path)
    try:
        assert store.entries(1)[1] == []  # the old epoch's tags are gone
    finally:
        store.close()
    verdict = verify_log(live.config.audit_log_path,
                         Verifier(public_key_path(live.config.signing_key_path).read_text()))
    rotations = [b for _, b in verdict.state.entries if b["operation"] == "key.rotate" and b["phase"] == "outcome"]
    assert [(r["operator"], r["old_epoch"], r["new_epoch"]) for r in rotations] == [("admin-1", 1, 2)]


@pytest.mark.parametrize("listen", ["10.1.2.3:5000", "0.0.0.0:5000", "[::]:5000", "example.org:5000"])
def test_plaintext_is_refused_off_loopback(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(f'[node]\nid = "n"\nlisten = "{listen}"\nplaintext = true\n'
                    '[tls]\nca = "a"\ncert = "b"\nkey = "c"\n')
    with pytest.raises(ConfigurationError, match="only allowed with a loopback"):
        load_config(path)


def test_plaintext_on_loopback_needs_the_flag_and_a_partner_entry(tmp_path: Path, pki_dir: Path) -> None:
    extra = '\n[partners.plaintext-loopback]\nlists = ["wanted-persons"]\nmodes = ["intersection"]\n'
    config = make_config(tmp_path, pki_dir, "agency-b", partners=(), extra=extra)
    config = config.__class__(**{**config.__dict__, "plaintext": True})
    node = open_node(config)
    server, port = create_server(node, "127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = pb_grpc.MatchingStub(channel).GetParameters(pb.GetParametersRequest(), timeout=10)
        assert reply.node_id == "agency-b"
    finally:
        server.stop(grace=None).wait()
        node.close()


def test_a_rotation_replaces_what_an_interrupted_one_left(start_node: Callable[..., LiveNode],
                                                          client_for: Callable[..., MatchClient]) -> None:
    live = start_node(LISTS.b)
    store = Store(live.config.store_path)
    try:  # a rotation that died after writing epoch 2's entries, under a key that was never saved
        store.fill_epoch(ServerKey(2, oprf.generate_key()), live.config.profile)
    finally:
        store.close()
    assert rotate_key(live.config, "admin-1").new_epoch == 2
    result = client_for(live).match(LISTS.a, purpose="p", case_reference="c")
    assert {(h.record_id, h.reference) for h in result.hits} == {(a, REFS[b]) for a, b in LISTS.overlap}


def test_list_changes_wait_for_a_rotation(start_node: Callable[..., LiveNode],
                                          client_for: Callable[..., MatchClient]) -> None:
    live = start_node(LISTS.b)
    changed = [replace(r, reference=r.reference + "-v2") for r in LISTS.b[:10]]
    with ThreadPoolExecutor(1) as pool:
        with locked(live.config.store_path):  # what a running rotation holds
            waiting = pool.submit(import_records, live.config, changed, "test-operator")
            time.sleep(0.5)
            assert not waiting.done()  # it would otherwise compute only the epoch being replaced
        assert waiting.result(timeout=30).updated == 10
    refs = {r.record_id: r.reference for r in (*changed, *LISTS.b[10:])}
    result = client_for(live).match(LISTS.a, purpose="p", case_reference="c")
    assert {(h.record_id, h.reference) for h in result.hits} == {(a, refs[b]) for a, b in LISTS.overlap}


def test_a_rotation_refuses_a_list_stored_under_another_profile(start_node: Callable[..., LiveNode],
                                                                tmp_path: Path, pki_dir: Path) -> None:
    live = start_node(LISTS.b)
    before = live.node.parameters()
    edited = make_config(tmp_path, pki_dir, "agency-b", profile="standard/5")  # the operator edits the config
    with pytest.raises(ConfigurationError, match="another match profile"):
        rotate_key(edited, "admin-1")
    assert load_key(live.config.key_path).epoch == 1
    after = live.node.parameters()  # the served epoch and its tags are untouched
    assert (after.key_epoch, after.list_version, after.tag_count) == (
        before.key_epoch, before.list_version, before.tag_count)


def test_an_interrupted_epoch_fill_never_leaves_half_a_record(tmp_path: Path, pki_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    records = [Record(f"r-{i:05d}", f"Person {i}", PartialDate(1970, 1, 1), reference=f"REF-{i}",
                      documents=(IdentityDocument("PASSPORT", f"P{i}", "DEU"), IdentityDocument("ID", f"I{i}", "DEU")))
               for i in range(1500)]  # three keys each: 4,500 keys, and the first chunk of 4,096 ends mid-record
    import_records(config, records, "test-operator")
    writes = 0
    original = store_module._write_entries

    def fail_second(*args: object) -> None:
        nonlocal writes
        writes += 1
        if writes == 2:
            raise OSError("disk full")
        original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "_write_entries", fail_second)
    store = Store(config.store_path)
    try:
        with pytest.raises(OSError, match="disk full"):
            store.fill_epoch(ServerKey(2, oprf.generate_key()), config.profile)
        written = dict(store.query("SELECT record_id, COUNT(*) FROM entries WHERE epoch=2 GROUP BY record_id"))
        wanted = dict(store.query("SELECT record_id, COUNT(*) FROM match_keys GROUP BY record_id"))
        assert written and all(wanted[record_id] == count for record_id, count in written.items())
        monkeypatch.setattr(store_module, "_write_entries", original)  # the next fill completes the epoch
        assert store.fill_epoch(ServerKey(2, oprf.generate_key()), config.profile) == 4500 - sum(written.values())
        assert dict(store.query("SELECT record_id, COUNT(*) FROM entries WHERE epoch=2 GROUP BY record_id")) == wanted
    finally:
        store.close()


def test_two_threads_importing_through_one_store_both_land(tmp_path: Path, pki_dir: Path) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    key = create_key(config.key_path, 1)
    halves = [[Record(f"{side}-{i}", f"Person {side} {i}", PartialDate(1970, 1, 1), reference=f"REF-{side}-{i}")
               for i in range(300)] for side in ("x", "y")]
    store = Store(config.store_path)
    try:  # the staging tables belong to the shared connection: the second import waits for the first
        store.upsert(halves[0][:1], key, config.profile)  # the list's profile is settled before the two start
        with ThreadPoolExecutor(2) as pool:
            counts = [f.result(timeout=120) for f in [pool.submit(store.upsert, half, key, config.profile)
                                                       for half in halves]]
        assert [c.match_keys for c in counts] == [299, 300] and store.record_count() == 600  # x-0 was there
        assert store.query("SELECT COUNT(*) FROM entries")[0][0] == 600
    finally:
        store.close()
