"""The gRPC client library an agency embeds to match against a partner node (needs only psi and psiwire)."""

from client.api import ClientTls, MatchClient

__all__ = ["ClientTls", "MatchClient"]
