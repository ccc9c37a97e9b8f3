"""Counters of this process's event stream, for /metrics (taskmed.metrics): plain integers bumped where
things happen (the event loop, mostly), read at scrape time. No locks and nothing per socket on the hot
path: a frame fanned out to N sockets adds N once."""

counts = dict.fromkeys(
    (
        "frames_durable",  # frames of logged events written to sockets
        "frames_ephemeral",  # typing, viewing, presence
        "slow_client_closes",  # sockets closed 1013 for falling too far behind
        "gap_fills",  # reads of the log to fill a seq gap, once per process
        "resyncs",  # clinics whose screens were told to reload (too much missed)
        "bus_reconnects",  # Redis subscriptions lost and made again
        "bus_publish_failures",  # publishes to Redis that failed (the others catch up from the log)
        "bus_publish_skipped",  # publishes not tried for a while after one failed (the log brings them)
        "bus_received",  # frames heard from other processes over the bus (durable and ephemeral)
        "ws_connects",  # sockets that said hello (authenticated and joined their clinic's feed)
        "ws_disconnects",  # of those, sockets that ended (the client left, the network dropped, or closed here)
    ),
    0,
)


def bump(name: str, by: int = 1) -> None:
    counts[name] += by
