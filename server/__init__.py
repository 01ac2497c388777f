"""The node: gRPC service, list storage, key storage and development PKI."""
