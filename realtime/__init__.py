"""The event stream: the per-clinic event log, broadcast after commit, and the WebSocket side of it."""


def publish(clinic_id: int, type: str, data: dict, conversation_id: int | None = None):
    """Append a durable event to the clinic's log and broadcast it on commit (see realtime.events)."""
    from realtime.events import publish as publish_event

    return publish_event(clinic_id, type, data, conversation_id=conversation_id)
