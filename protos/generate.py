"""Generate the Python wire modules in `psiwire/` from `protos/`.

grpc_tools names Python modules after the .proto path (`psi.v1...`), which
would shadow the `psi` core package; the generated imports are rewritten to
`psiwire`. Run: python protos/generate.py [OUTDIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PROTOS = ("matching", "witness")  # psi/v1/NAME.proto -> psiwire/NAME_pb2*.py


def outputs(proto: str) -> tuple[str, ...]:
    return (f"{proto}_pb2.py", f"{proto}_pb2.pyi", f"{proto}_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = protoc.main([
            "grpc_tools.protoc", f"-I{ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}", *(str(ROOT / "psi" / "v1" / f"{proto}.proto") for proto in PROTOS),
        ])
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        for proto in PROTOS:
            for name in outputs(proto):
                text = (Path(tmp) / "psi" / "v1" / name).read_text()
                (out_dir / name).write_text(text.replace("from psi.v1 import", "from psiwire import"))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "psiwire")
