"""Write the bulk-mode transcript `bulk-transcript.json` (docs/protocol.md, "Bulk mode").

    .venv/bin/python -m tests.vectors.make_bulk_vectors

Both parties run with a fixed byte stream in place of OS randomness (`FixedRng`: SHA-256 of a
label and a counter), on the Python reference kernels; every message, in order, and the
receiver's hits are written. `tests/unit/test_bulk_vectors.py` replays the inputs on both
kernels and compares every byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from psi import bulk
from psi import bulk_kernels as bk

HERE = Path(__file__).resolve().parent
RECEIVER_KEYS = [b"alice|1980-01-02", b"bob|1975-05-06", b"carol|1990-10-11", b"dave|1966-06-06",
                 b"bob|1975-05-06", b"erin|2001-12-24"]
SENDER_KEYS = [b"mallory|1970-01-01", b"bob|1975-05-06", b"erin|2001-12-24", b"bob|1975-05-06",
               b"trent|1985-03-03"]
SENDER_PAYLOADS = [b"ref-m-1", b"ref-b-1", b"ref-e-1", b"ref-b-2", b"ref-t-1"]
MAX_CHUNK_BYTES = 4096


class FixedRng:
    """A deterministic byte stream: SHA-256(label || u64 LE counter) blocks, consumed in order."""

    def __init__(self, label: str) -> None:
        self._label = label.encode()
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += hashlib.sha256(self._label + self._counter.to_bytes(8, "little")).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def transcript(kernels: bk.Kernels, receiver_keys: list[bytes], sender_keys: list[bytes],
               payloads: list[bytes], chunk: int = MAX_CHUNK_BYTES) -> dict[str, Any]:
    """Both parties end to end with fixed randomness: every message and the hits."""
    receiver = bulk.BulkReceiver(receiver_keys, rng=FixedRng("receiver"), kernels=kernels)
    sender = bulk.BulkSender(bulk.sender_list(sender_keys, payloads, kernels), max_receiver_items=1000,
                             rng=FixedRng("sender"), kernels=kernels)
    hello = receiver.hello()
    setup = sender.setup(hello)
    corrections = list(receiver.corrections(setup, chunk))
    for c in corrections:
        sender.absorb(c)
    results = list(sender.results(chunk))
    hits = [hit for r in results for hit in receiver.open(r)]
    receiver.finish()
    return {"hello": hello, "setup": setup, "corrections": corrections, "results": results, "hits": hits}


def main() -> None:
    t = transcript(bk.PYTHON, RECEIVER_KEYS, SENDER_KEYS, SENDER_PAYLOADS)
    document = {
        "suite": bulk.SUITE,
        "comment": "Bulk mode (KKRT16) transcript with fixed randomness; tests/vectors/make_bulk_vectors.py",
        "rng": "SHA-256(label || u64 LE counter) blocks; labels 'receiver' and 'sender'",
        "max_chunk_bytes": MAX_CHUNK_BYTES,
        "receiver_keys": [k.hex() for k in RECEIVER_KEYS],
        "sender_keys": [k.hex() for k in SENDER_KEYS],
        "sender_payloads": [p.hex() for p in SENDER_PAYLOADS],
        "hello": t["hello"].hex(),
        "setup": t["setup"].hex(),
        "corrections": [c.hex() for c in t["corrections"]],
        "results": [r.hex() for r in t["results"]],
        "hits": [[i, p.hex()] for i, p in t["hits"]],
    }
    (HERE / "bulk-transcript.json").write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
