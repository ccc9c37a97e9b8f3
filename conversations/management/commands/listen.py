"""`manage.py listen`: connect to /ws/ like a browser and print every frame; the tool for "messages are
not arriving"."""

import asyncio
import json
import time
import urllib.parse

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.ordering import SeqOrder

RECONNECT_SECONDS = 2


class Command(BaseCommand):
    help = (
        "Connect to a server's /ws/ as a user of a clinic and print the frames, in seq order, filling gaps "
        "from /api/events/ and resuming after drops. Give --token (an access token) or --user and --clinic "
        "(a token is issued here, so this needs the server's database)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: %(default)s)")
        parser.add_argument("--token", help="an access token from POST /api/auth/token/")
        parser.add_argument("--user", help="a username: issue a token for it here")
        parser.add_argument("--clinic", help="with --user: the clinic's slug, when the user works for several")
        parser.add_argument("--after", type=int, help="resume after this seq (default: live from now)")
        parser.add_argument("--max-frames", type=int, help="stop after printing this many frames")
        parser.add_argument("--seconds", type=float, help="stop after this many seconds")

    def handle(self, *args, url, token, user, clinic, after, max_frames, seconds, **options) -> None:
        if not token and not user:
            raise CommandError("Give --token, or --user (and --clinic if the user works for several clinics).")
        token = token or self.issue_token(user, clinic)
        self.printed, self.max_frames = 0, max_frames
        deadline = time.monotonic() + seconds if seconds else None
        try:
            asyncio.run(self.listen(url.rstrip("/"), token, after, deadline))
        except KeyboardInterrupt:
            pass

    def issue_token(self, username: str, slug: str | None) -> str:
        from django.contrib.auth import get_user_model

        from conversations.actions.api_sessions import open_api_session
        from conversations.api.views.auth import choose_membership, token_pair

        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        clinic_id = None
        if slug:
            membership = user.memberships.filter(clinic__slug=slug).first()
            if membership is None:
                raise CommandError(f"{username} is not a member of {slug!r}.")
            clinic_id = membership.clinic_id
        try:
            membership = choose_membership(user, clinic_id)
        except Exception as error:
            raise CommandError(str(getattr(error, "detail", error))) from None
        return token_pair(membership, str(open_api_session(membership=membership).sid))["access"]

    def show(self, frame: dict) -> bool:
        self.stdout.write(json.dumps(frame, ensure_ascii=False))
        self.stdout.flush()  # one line a frame, at once, even into a pipe (| grep)
        self.printed += 1
        return self.max_frames is not None and self.printed >= self.max_frames

    async def listen(self, url: str, token: str, after: int | None, deadline: float | None) -> None:
        ws_url = (
            urllib.parse.urlsplit(url)._replace(scheme="wss" if url.startswith("https") else "ws", path="/ws/").geturl()
        )
        order: SeqOrder | None = None
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            while deadline is None or time.monotonic() < deadline:
                try:
                    start = order.last if order is not None else after  # the resume point, on connect
                    query = f"?after={start}" if start is not None else ""
                    async with connect(ws_url + query, additional_headers=headers, origin=url) as ws:
                        hello = json.loads(await ws.recv())
                        if hello.get("type") != "hello":
                            raise CommandError(f"The server answered {hello}")
                        if self.show(hello):
                            return
                        if order is None:
                            order = SeqOrder(hello["seq"] if after is None else after)
                        if await self.receive(ws, http, order, deadline):
                            return
                except InvalidStatus as refused:
                    raise CommandError(
                        f"The server refused the connection: HTTP {refused.response.status_code}"
                    ) from None
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                    self.stderr.write(
                        f"-- connection closed ({code}: {closed.rcvd.reason if closed.rcvd else 'no reason'})"
                    )
                    if code in (4401, 4403):
                        raise CommandError("Not allowed: check the token, the user and the clinic.") from None
                except OSError as error:
                    self.stderr.write(f"-- cannot connect to {ws_url}: {error}; retrying")
                await asyncio.sleep(RECONNECT_SECONDS)

    async def receive(self, ws, http: httpx.AsyncClient, order: SeqOrder, deadline: float | None) -> bool:
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            except TimeoutError:
                return True
            if frame.get("type") == "resync":
                order.reset(frame["seq"])
                if self.show(frame):
                    return True
                continue
            if frame.get("seq") is None or frame["type"] in ("pong", "resumed"):
                if self.show(frame):
                    return True
                continue
            for ready in order.push(frame):
                if self.show(ready):
                    return True
            if order.gap and frame["type"] != "resumed":
                await self.fill(http, order)

    async def fill(self, http: httpx.AsyncClient, order: SeqOrder) -> None:
        """Frames held behind a gap for a moment longer than the replay would take: fetch it over HTTP."""
        await asyncio.sleep(0.5)
        if not order.gap:
            return
        response = await http.get("/api/events/", params={"after": order.last})
        for frame in response.json().get("events", []):
            if frame.get("type") == "resync":
                order.reset(frame["seq"])
            else:
                for ready in order.push(frame):
                    self.show(ready)
