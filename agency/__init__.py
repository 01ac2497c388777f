"""What both sides of an agency's node share: its config, keys, file locks and audit log."""
