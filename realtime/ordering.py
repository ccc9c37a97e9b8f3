"""What a client does with durable frames (DESIGN §4): apply them in seq order, hold one that arrives
ahead of a missing one, and say which gap to fetch from the log. Used by `manage.py listen`;
static/js/realtime.js does the same in the browser."""


class SeqOrder:
    def __init__(self, last: int = 0):
        self.last = last
        self.pending: dict[int, dict] = {}

    def push(self, frame: dict) -> list[dict]:
        """The frames now ready, in order; a duplicate or an old frame yields nothing."""
        seq = frame["seq"]
        if seq <= self.last or seq in self.pending:
            return []
        self.pending[seq] = frame
        ready = []
        while self.last + 1 in self.pending:
            self.last += 1
            ready.append(self.pending.pop(self.last))
        return ready

    @property
    def gap(self) -> tuple[int, int] | None:
        """(after, up to) of what is missing before the held frames, or None."""
        if not self.pending:
            return None
        return self.last, min(self.pending) - 1

    def reset(self, seq: int) -> None:
        """After a resync: the client reloaded its lists, so everything up to `seq` is known."""
        self.last, self.pending = seq, {}
