"""Start-up reconciliation of the store and the audit log after a crash.

Every audited change of the node's state is written as an intent entry, the
store transaction (which records the intent's operation id), then an outcome
entry. A process killed in between leaves an intent without an outcome; here,
under the node's list lock (so no change is running), each such intent gets
the outcome the store proves: committed (the operation id is in the store) or
aborted. So the log never claims what did not happen and never misses what did.
An intent whose writer is still alive (it holds its operation lock,
server.operations) is left alone, so any process may reconcile at any time.
"""

from __future__ import annotations

from agency.audit.log import AuditLog
from agency.config import NodeConfig
from agency.file_lock import locked
from server import audit_events as events
from server.key_lifecycle import recover_rotation
from server.operations import is_running
from server.store import Store


def reconcile(config: NodeConfig, store: Store, audit: AuditLog) -> list[str]:
    """Settle what a crash left open; returns a line per thing done, for the operator."""
    notes = []
    with locked(config.store_path):
        rotation = recover_rotation(config.key_path, store)
        if rotation:
            notes.append(rotation)
        for op_id, body in audit.open_intents().items():
            if is_running(config.data_dir, op_id):
                continue  # another process is carrying it out right now
            committed = store.committed(op_id)
            operation = str(body.get("operation", "unknown"))
            audit.outcome(op_id, events.recovered(operation, op_id, committed),
                          outcome="ok" if committed else "aborted")
            notes.append(f"{operation} (operation {op_id}) was cut short: "
                         f"{'it had committed' if committed else 'it did not happen'}; the audit log says so now")
    return notes
