"""Tamper-evident audit logs: a blake3 hash chain with signed Ed25519 checkpoints."""
