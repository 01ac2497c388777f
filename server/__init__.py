"""The answering node: gRPC service, list storage, admission policy and list changes."""
