"""Agency-side client: the Python API (`MatchClient`) and the `psi` command line."""

from client.api import ClientTls, MatchClient

__all__ = ["ClientTls", "MatchClient"]
