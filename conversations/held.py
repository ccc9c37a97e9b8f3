"""What one server process holds per clinic between queries — a clinic's hours, whether it has devices to
push to — fresh for a while, and forgotten at once when a change is announced (a control message to every
process, and the change's own signal). Reading what is held never queries, so the webhook's event loop may."""

import threading
import time


class HeldPerClinic[Value]:
    def __init__(self, reload_seconds: float):
        self.reload_seconds = reload_seconds
        self._held: dict[int, tuple[Value, float]] = {}
        self._lock = threading.Lock()

    def get(self, clinic_id: int) -> Value | None:
        """The clinic's value if this process holds it fresh, else None: never a query."""
        found = self._held.get(clinic_id)
        if found is None or time.monotonic() - found[1] > self.reload_seconds:
            return None
        return found[0]

    def put(self, clinic_id: int, value: Value) -> Value:
        with self._lock:
            self._held[clinic_id] = (value, time.monotonic())
        return value

    def forget(self, message: dict | None = None) -> None:
        """A clinic's value changed (`{"clinic_id": …}`; none named: every clinic's): read it again on next use."""
        clinic_id = (message or {}).get("clinic_id")
        with self._lock:
            if clinic_id is None:
                self._held.clear()
            else:
                self._held.pop(clinic_id, None)
