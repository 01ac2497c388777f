from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from agency.keys import create_key, load_key
from psi.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


def test_key_file_is_created_private_reloaded_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "oprf.key"
    key = create_key(path, 1)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(path) == key
    assert "hidden" in repr(key) and key.secret.hex() not in repr(key)
    with pytest.raises(ConfigurationError, match="already exists"):
        create_key(path, 1)
    assert load_key(path) == key


def test_a_missing_key_file_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="missing"):
        load_key(tmp_path / "oprf.key")
    assert not (tmp_path / "oprf.key").exists()


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "oprf.key"
    create_key(path, 1)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_key(path)


def test_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "oprf.key"
    path.write_text('{"epoch": 1, "key": "00"}')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigurationError, match="valid key"):
        load_key(path)


def test_generated_wire_code_is_up_to_date(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(tmp_path)
    for name in ("matching_pb2.py", "matching_pb2.pyi", "matching_pb2_grpc.py"):
        fresh = (tmp_path / name).read_text()
        assert fresh == (ROOT / "psiwire" / name).read_text(), f"run `make protos` ({name})"
