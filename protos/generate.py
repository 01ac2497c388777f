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
PROTO = "psi/v1/matching.proto"


def generate(out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = protoc.main([
            "grpc_tools.protoc", f"-I{ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}", str(ROOT / PROTO),
        ])
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        for name in ("matching_pb2.py", "matching_pb2.pyi", "matching_pb2_grpc.py"):
            text = (Path(tmp) / "psi" / "v1" / name).read_text()
            (out_dir / name).write_text(text.replace("from psi.v1 import", "from psiwire import"))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "psiwire")
