"""The event stream: the per-clinic event log, broadcast after commit, and the WebSocket side of it.

What the domain uses: `publish()` inside an action's transaction (realtime.log), `access_changed()` after
a change of who may see a clinic, and `realtime.auth.configure()` at start-up.
"""


def publish(clinic_id: int, type: str, data: dict, conversation_id: int | None = None):
    """Append a durable event to the clinic's log and broadcast it on commit (see realtime.log)."""
    from realtime.log import publish as publish_event  # the package loads before the app registry

    return publish_event(clinic_id, type, data, conversation_id=conversation_id)


def access_changed(user_id: int) -> None:
    """Tell every server process that `user_id`'s access may have changed (a membership removed, the user
    deactivated, a logout): their sockets are re-checked, and closed if it ended. Call after commit."""
    from realtime import broadcast

    broadcast.control({"type": "access", "user_id": user_id})
