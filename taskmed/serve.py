"""The server as every place here starts it (`make run`, the tests, the benchmarks, the deployment):
uvicorn with the flags of DESIGN §10 and the protocol's frame limit.

    python -m taskmed.serve --host 127.0.0.1 --port 8000 [any other uvicorn option]

uvicorn buffers a WebSocket message whole before the application sees it, up to its own limit (16 MiB by
default): the protocol's 64 KiB is set here, so that a larger frame is refused by the server (close 1009)
before it is held in memory.

The client's address: `X-Forwarded-For` is believed only from the proxies listed in TRUSTED_PROXIES
(comma-separated addresses or networks, e.g. the nginx in front: 127.0.0.1); with none listed it is ignored,
so that no client can choose the address its logins are counted under.
"""

import os
import sys

from realtime.frames import MAX_FRAME_BYTES

APPLICATION = "taskmed.asgi:application"
FLAGS = [
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--ws",
    "websockets-sansio",
    "--ws-per-message-deflate",
    "false",
    "--ws-max-size",
    str(MAX_FRAME_BYTES),
]


def command(*options: str) -> list[str]:
    """The command line that serves the app with these further uvicorn options."""
    return [sys.executable, "-m", "taskmed.serve", *options]


def proxy_flags(trusted: str) -> list[str]:
    trusted = ",".join(part.strip() for part in trusted.split(",") if part.strip())
    return ["--proxy-headers", "--forwarded-allow-ips", trusted] if trusted else ["--no-proxy-headers"]


def main(argv: list[str]) -> None:
    import uvicorn.main

    uvicorn.main.main([APPLICATION, *FLAGS, *proxy_flags(os.environ.get("TRUSTED_PROXIES", "")), *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
