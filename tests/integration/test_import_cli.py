"""`psi watchlist import` as an operator meets it: real files, empty files, the same file twice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agency.config import NodeConfig
from cli.main import main
from demo.synthetic import make_lists
from psi.record_parsing import format_csv, format_jsonl
from server.store import Store
from tests.conftest import make_config

RECORDS = make_lists(10, 30, 0, seed=61).b


def _import(config: NodeConfig, path: Path, *extra: str) -> int:
    toml = config.data_dir.parent / f"{config.node_id}.toml"
    return main(["watchlist", "import", str(path), "--config", str(toml), "--quiet", *extra])


def _version(config: NodeConfig) -> int:
    store = Store(config.store_path)
    try:
        return store.list_version
    finally:
        store.close()


def test_a_csv_with_a_byte_order_mark_imports(tmp_path: Path, pki_dir: Path) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    path = tmp_path / "list.csv"
    path.write_text("\ufeff" + format_csv(RECORDS), encoding="utf-8")
    assert _import(config, path) == 0


@pytest.mark.parametrize("text", ["", "id,name,birth_date,reference\n"])
def test_an_empty_file_is_refused_and_leaves_nothing_behind(tmp_path: Path, pki_dir: Path, text: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    path = tmp_path / ("empty.csv" if text else "empty.jsonl")
    path.write_text(text)
    assert _import(config, path) == 2
    assert "holds no records" in capsys.readouterr().err
    assert not config.data_dir.exists()
    assert _import(config, path, "--allow-empty") == 0


def test_an_identical_reimport_changes_nothing(tmp_path: Path, pki_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    path = tmp_path / "list.jsonl"
    path.write_text(format_jsonl(RECORDS))
    assert _import(config, path) == 0
    version = _version(config)
    capsys.readouterr()
    assert _import(config, path) == 0
    assert "0 new, 0 updated, 30 unchanged (0 match keys computed)" in capsys.readouterr().out
    assert _version(config) == version
    changed = [*RECORDS[:29], replace(RECORDS[29], reference="NEW-REF")]
    path.write_text(format_jsonl(changed))
    assert _import(config, path) == 0
    assert "0 new, 1 updated, 29 unchanged" in capsys.readouterr().out
    assert _version(config) == version + 1


DIRTY = ("id,name,birth_date,nationality,reference\n"
         "1,Ann Berg,1980-02-30,DE,R1\n"  # an impossible date: kept without it, with a warning
         "2,Bob Stone,1981-03-04,,\n"  # no reference: unreadable for a watchlist
         "3,Cem Kaya,1982-05-06,Germany,R3\n"
         "3,Cem Kaya again,1982-05-06,TR,R4\n")  # a duplicate id


def test_a_dirty_list_imports_what_it_can_with_warnings_and_a_reject_file(
        tmp_path: Path, pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path, pki_dir, "agency-b")
    path = tmp_path / "dirty.csv"
    path.write_text(DIRTY)
    assert _import(config, path) == 2  # all or nothing by default
    assert not config.data_dir.exists()
    capsys.readouterr()
    assert _import(config, path, "--on-error=skip") == 0
    captured = capsys.readouterr()
    assert "day 30 does not exist" in captured.err and "kept without a date of birth" in captured.err
    assert "read 2 records: 2 new" in captured.out
    rejected = (tmp_path / "dirty.csv.rejected.csv").read_text()
    assert "reference" in rejected and "duplicate" in rejected
    store = Store(config.store_path)
    try:
        kept = {r.record_id: r for r in store.records()}
    finally:
        store.close()
    assert (kept["1"].birth_date, kept["1"].nationality, kept["3"].nationality) == (None, "DEU", "DEU")
    assert _import(config, path, "--strict") == 2  # the date is an error too: the file is refused
