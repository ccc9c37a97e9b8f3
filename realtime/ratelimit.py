"""Per-connection frame limits: an error frame past the limit, and a close on sustained abuse."""

import time
from collections import deque


class FrameRateLimit:
    """A sliding minute: up to `per_minute` frames pass; past it they are refused; at twice it, close."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self.seen: deque[float] = deque()

    def hit(self) -> str:
        now = self.clock()
        while self.seen and now - self.seen[0] >= 60:
            self.seen.popleft()
        self.seen.append(now)
        if len(self.seen) > 2 * self.per_minute:
            return "close"
        if len(self.seen) > self.per_minute:
            return "refuse"
        return "ok"
