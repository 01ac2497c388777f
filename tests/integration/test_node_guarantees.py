"""Where each guarantee lives: one admission path, the key lifecycle, budgets per evaluated batch.

Against a live node on 127.0.0.1 with mutual TLS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agency.keys import ServerKey, create_key
from cli.main import main
from demo.synthetic import make_lists
from psi.record_parsing import format_jsonl
from psiwire import matching_pb2 as pb
from psiwire import matching_pb2_grpc as pb_grpc
from server.store import Store
from tests.conftest import LiveNode, tls_for
from tests.integration import raw_calls

LISTS = make_lists(60, 40, 10, seed=41)
AGREEMENTS = """
[partners.agency-a]
lists = ["wanted-persons"]
modes = ["intersection"]
max_query_size = 100
budget_per_epoch = 120
rate_per_minute = 600
"""
Code = grpc.StatusCode


def _channel(live: LiveNode, pki: Path, who: str = "agency-a") -> grpc.Channel:
    return grpc.secure_channel(live.target, tls_for(pki, who).credentials())


def _start(live: LiveNode, total: int, **changes: object) -> pb.EvaluateRequest:
    return raw_calls.start(live.config.profile, total, **{"purpose": "guarantee test", "case_reference": "G-1",
                                                          **changes})


_batch = raw_calls.random_batch
_refusal = raw_calls.refusal


def _audit_ops(live: LiveNode) -> list[dict[str, object]]:
    return raw_calls.audit_bodies(live.config.audit_log_path)


@pytest.fixture
def live(start_node: Callable[..., LiveNode]) -> LiveNode:
    return start_node(LISTS.b, partners=(), extra=AGREEMENTS)


def test_each_admission_failure_has_one_status_in_the_documented_order(live: LiveNode, pki_dir: Path) -> None:
    stub = pb_grpc.MatchingStub(_channel(live, pki_dir))
    intruder = pb_grpc.MatchingStub(_channel(live, pki_dir, "intruder"))
    # Identity comes before the list: a non-partner learns nothing about which lists exist.
    assert _refusal(lambda: intruder.GetParameters(pb.GetParametersRequest(list_id="nope")))[0] is \
        Code.UNAUTHENTICATED
    assert _refusal(lambda: stub.GetParameters(pb.GetParametersRequest(list_id="nope"))) == (
        Code.NOT_FOUND, "no list 'nope' on this node; it serves 'wanted-persons'")
    # An empty list id means the node's list in every call.
    assert stub.GetParameters(pb.GetParametersRequest(list_id="")).list_id == "wanted-persons"
    list(stub.StreamTags(pb.StreamTagsRequest(mode=pb.MODE_INTERSECTION, key_epoch=1)))
    code, message = _refusal(lambda: list(stub.StreamTags(pb.StreamTagsRequest(
        mode=pb.MODE_CARDINALITY, key_epoch=1))))
    assert (code, message) == (Code.PERMISSION_DENIED, "the agreement with 'agency-a' allows only mode(s) "
                                                       "intersection")
    # Size: one check, against the smaller of the agreement's and the node's limit, before any budget.
    code, message = _refusal(lambda: list(stub.Evaluate(iter([_start(live, 101)]))))
    assert (code, message) == (Code.PERMISSION_DENIED, "the agreement allows at most 100 elements per request; "
                                                       "this one announces 101")
    replayed = _start(live, 1, list_id="")
    list(stub.Evaluate(iter([replayed, _batch(0, 1), pb.EvaluateRequest(finish=pb.Finish())])))
    assert _refusal(lambda: list(stub.Evaluate(iter([replayed]))))[0] is Code.ALREADY_EXISTS
    assert _refusal(lambda: list(stub.Evaluate(iter([_start(live, 100), _start(live, 100)]))))[0] is \
        Code.FAILED_PRECONDITION
    finish = pb.EvaluateRequest(finish=pb.Finish())
    list(stub.Evaluate(iter([_start(live, 100), *(_batch(i, 25) for i in range(4)), finish])))
    # 101 of 120 charged: 20 more would overdraw the budget.
    assert _refusal(lambda: list(stub.Evaluate(iter([_start(live, 20)]))))[0] is Code.RESOURCE_EXHAUSTED
    refused = [body for body in _audit_ops(live) if body["operation"] == "request.refused"]
    assert [body["status"] for body in refused] == ["UNAUTHENTICATED", "NOT_FOUND", "PERMISSION_DENIED",
                                                    "PERMISSION_DENIED", "ALREADY_EXISTS", "FAILED_PRECONDITION",
                                                    "RESOURCE_EXHAUSTED"]


def test_no_snapshot_or_group_operation_before_admission(live: LiveNode, pki_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden() -> None:
        raise AssertionError("snapshot built for an unadmitted request")

    monkeypatch.setattr(live.node, "current", forbidden)
    intruder = pb_grpc.MatchingStub(_channel(live, pki_dir, "intruder"))
    assert _refusal(lambda: list(intruder.Evaluate(iter([_start(live, 1)]))))[0] is Code.UNAUTHENTICATED
    assert _refusal(lambda: list(intruder.StreamTags(pb.StreamTagsRequest(key_epoch=1))))[0] is \
        Code.UNAUTHENTICATED


def test_budget_charges_exactly_the_batches_evaluated(live: LiveNode, pki_dir: Path) -> None:
    stub = pb_grpc.MatchingStub(_channel(live, pki_dir))
    release = threading.Event()

    def requests() -> object:
        yield _start(live, 90)
        yield _batch(0, 30)
        release.wait(timeout=10)

    call = stub.Evaluate(requests())
    assert next(call).HasField("accepted")
    assert next(call).HasField("batch")
    call.cancel()  # the partner goes away after one batch of three
    release.set()
    deadline = time.monotonic() + 10  # the session has ended once its end is audited
    while not any(b["operation"] == "request.refused" for b in _audit_ops(live)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.node.store.budget_used("agency-a", 1) == 30
    # What the abandoned session reserved is free again: 90 of 120 left.
    finish = pb.EvaluateRequest(finish=pb.Finish())
    list(stub.Evaluate(iter([_start(live, 80), *(_batch(i, 20) for i in range(4)), finish])))
    assert live.node.store.budget_used("agency-a", 1) == 110


def test_the_request_reader_ends_with_the_call(live: LiveNode, pki_dir: Path) -> None:
    stub = pb_grpc.MatchingStub(_channel(live, pki_dir))
    finish = pb.EvaluateRequest(finish=pb.Finish())
    before = threading.active_count()
    for _ in range(5):  # messages after finish, and a burst after a refused first message
        list(stub.Evaluate(iter([_start(live, 1), _batch(0, 1), finish, *(_batch(1, 1) for _ in range(20))])))
        _refusal(lambda: list(stub.Evaluate(iter([_start(live, 1000), *(_batch(0, 1) for _ in range(20))]))))
    deadline = time.monotonic() + 10
    while threading.active_count() > before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= before + 2


def _health(live: LiveNode, pki_dir: Path) -> int:
    health = health_pb2_grpc.HealthStub(_channel(live, pki_dir))
    return int(health.Check(health_pb2.HealthCheckRequest(service="")).status)


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_a_key_deleted_or_replaced_under_a_running_node_stops_it_serving(
        live: LiveNode, pki_dir: Path, change: str) -> None:
    stub = pb_grpc.MatchingStub(_channel(live, pki_dir))
    assert stub.GetParameters(pb.GetParametersRequest()).key_epoch == 1
    assert _health(live, pki_dir) == health_pb2.HealthCheckResponse.SERVING
    live.config.key_path.unlink()
    if change == "replaced":
        assert isinstance(create_key(live.config.key_path, 1), ServerKey)  # the same epoch, another key
    for _ in range(2):
        code, message = _refusal(lambda: stub.GetParameters(pb.GetParametersRequest()))
        assert (code, message) == (Code.UNAVAILABLE, "the server could not complete the request")
    assert _health(live, pki_dir) == health_pb2.HealthCheckResponse.NOT_SERVING
    stopped = [body for body in _audit_ops(live) if body["operation"] == "node.not_serving"]
    assert len(stopped) == 1 and ("missing" if change == "deleted" else "fingerprint") in str(stopped[0]["message"])
    assert not live.config.key_path.exists() or change == "replaced"  # nothing minted a key on the request path


def _full_disk(store: Store) -> None:
    """The store's file may not grow: what a full disk does to SQLite (SQLITE_FULL)."""
    with store.transaction() as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    store.query(f"PRAGMA max_page_count={pages}")


def test_a_full_disk_is_unavailable_to_partners_and_an_operator_error(
        live: LiveNode, pki_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _full_disk(live.node.store)
    stub = pb_grpc.MatchingStub(_channel(live, pki_dir))
    finish = pb.EvaluateRequest(finish=pb.Finish())
    code, message = Code.OK, ""
    for _ in range(200):  # until the requests table needs a new page
        try:
            list(stub.Evaluate(iter([_start(live, 1), _batch(0, 1), finish])))
        except grpc.RpcError as exc:
            code, message = exc.code(), exc.details() or ""
            break
    assert (code, message) == (Code.UNAVAILABLE, "the server could not complete the request")
    refused = [body for body in _audit_ops(live) if body["operation"] == "request.refused"]
    assert refused and refused[-1]["status"] == "UNAVAILABLE"

    opened = Store.__init__

    def small(self: Store, *args: object, **kwargs: object) -> None:
        opened(self, *args, **kwargs)  # type: ignore[arg-type]
        _full_disk(self)

    monkeypatch.setattr(Store, "__init__", small)
    records = live.config.data_dir.parent / "more.jsonl"
    records.write_text(format_jsonl(make_lists(300, 10, 0, seed=7).b))
    config = live.config.data_dir.parent / "agency-b.toml"
    before = live.node.store.record_count()
    assert main(["watchlist", "import", str(records), "--config", str(config), "--quiet"]) == 4  # storage
    err = capsys.readouterr().err
    assert "database or disk is full" in err and "free disk space" in err and "Traceback" not in err
    assert live.node.store.record_count() == before


def _health_becomes(live: LiveNode, pki_dir: Path, status: int) -> bool:
    deadline = time.monotonic() + 10
    while _health(live, pki_dir) != status and time.monotonic() < deadline:
        time.sleep(0.1)
    return _health(live, pki_dir) == status


def test_health_is_not_serving_while_a_rotation_runs_or_the_audit_log_refuses(live: LiveNode,
                                                                            pki_dir: Path) -> None:
    pending = live.config.key_path.with_name(live.config.key_path.name + ".new")
    pending.write_text("{}")  # what `psi keys rotate` holds while it computes the next epoch
    assert _health_becomes(live, pki_dir, health_pb2.HealthCheckResponse.NOT_SERVING)
    pending.unlink()
    assert _health_becomes(live, pki_dir, health_pb2.HealthCheckResponse.SERVING)
    log = live.config.audit_log_path
    intact = log.read_bytes()
    log.write_bytes(intact + b'{"kind": "entry", "seq": 999}\n')  # a forged line: writers refuse the log
    assert _health_becomes(live, pki_dir, health_pb2.HealthCheckResponse.NOT_SERVING)
    log.write_bytes(intact)  # restored from the backup, as the refusal tells the operator
    assert _health_becomes(live, pki_dir, health_pb2.HealthCheckResponse.SERVING)
