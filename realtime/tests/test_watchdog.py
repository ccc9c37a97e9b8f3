"""The watchdog alone, over a stand-in for the domain's access rules: one re-check per login whatever its
number of sockets, only the changed user's sockets looked at, a token's end closing its socket, a browser
session looked at again at its end (and followed to its new end when extended), and a change announced
while a connection's credential was being checked not missed."""

import asyncio
import time

import pytest

from realtime import auth
from realtime.auth import Caller, Refused
from realtime.watchdog import Watchdog

GONE = Refused(auth.CLOSE_FORBIDDEN, "membership ended")


class Rules:
    """The domain's Access, as far as the watchdog asks it."""

    def __init__(self):
        self.refused: dict[int, Refused] = {}  # user id → why they are refused now
        self.checks: list[tuple] = []
        self.session_ends: dict[str, float] = {}

    def still_allowed(self, caller: Caller) -> Refused | None:
        self.checks.append(caller.key)
        return self.refused.get(caller.user_id)

    def session_expires_at(self, session_key: str) -> float | None:
        return self.session_ends.get(session_key)


class Socket:
    def __init__(self, user_id: int, *, session_key: str | None = None, key: tuple | None = None):
        credential = ("session", session_key) if session_key else ("token", user_id)
        self.caller = Caller(
            user_id=user_id, clinic_id=1, user={}, clinic={}, session_key=session_key, key=key or credential
        )
        self.refusals: list[Refused] = []

    def refuse(self, refused: Refused) -> None:
        self.refusals.append(refused)


@pytest.fixture
def rules():
    previous, stand_in = auth._access, Rules()
    auth.configure(stand_in)
    yield stand_in
    auth._access = previous
    auth._cache.clear()


async def settled(watchdog: Watchdog) -> None:
    while watchdog.tasks:
        await asyncio.gather(*watchdog.tasks)


async def eventually(condition, seconds: float = 5.0) -> None:
    """Wait for `condition` (a loaded machine may run timers and threads late), failing past `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_one_check_per_login_and_only_for_the_user_whose_access_changed(rules):
    watchdog = Watchdog()
    tabs = [Socket(7) for _ in range(3)]  # one login, three sockets
    colleague = Socket(8)
    for socket in [*tabs, colleague]:
        watchdog.watch(socket, since=auth.changes())
    rules.refused[7] = GONE

    watchdog.access_changed(7)
    await settled(watchdog)

    assert rules.checks == [("token", 7)]
    assert all(socket.refusals == [GONE] for socket in tabs)
    assert colleague.refusals == []


async def test_a_token_s_end_closes_its_socket_and_a_socket_gone_before_it_has_no_timer_left(rules):
    watchdog = Watchdog()
    ending, left = Socket(7), Socket(8)
    watchdog.watch(ending, since=auth.changes(), ends_at=time.time() + 0.1)
    watchdog.watch(left, since=auth.changes(), ends_at=time.time() + 0.1)
    left_timer = watchdog.timers[left]
    watchdog.unwatch(left)
    assert left not in watchdog.timers and left_timer.cancelled(), "a socket gone has no timer left"

    await eventually(lambda: ending.refusals)

    assert [r.code for r in ending.refusals] == [auth.CLOSE_NOT_AUTHENTICATED]
    assert left.refusals == [] and watchdog.timers == {}
    assert rules.checks == [], "a token's end needs no database"


async def test_a_browser_session_extended_is_followed_to_its_new_end(rules):
    watchdog = Watchdog()
    tab = Socket(7, session_key="s1")
    rules.session_ends["s1"] = time.time() + 0.4  # extended meanwhile
    watchdog.watch(tab, since=auth.changes(), ends_at=time.time() + 0.05)

    await eventually(lambda: tab in watchdog.timers and rules.checks)
    assert tab.refusals == [] and rules.checks == [("session", "s1")], "looked at once, still allowed"

    rules.refused[7] = Refused(auth.CLOSE_NOT_AUTHENTICATED, "logged out")  # the session has ended now
    await eventually(lambda: tab.refusals)
    assert [r.reason for r in tab.refusals] == ["logged out"]
    assert rules.checks == [("session", "s1")] * 2


async def test_a_change_heard_while_the_credential_was_checked_makes_the_watch_check_again(rules):
    watchdog = Watchdog()
    since = auth.changes()  # the connections' checks begin
    auth.forget(7)  # a change of user 7 is heard before they are watched
    rules.refused[7] = GONE
    tabs = [Socket(7) for _ in range(3)]
    colleague = Socket(8)

    for socket in [*tabs, colleague]:
        watchdog.watch(socket, since=since)
    await eventually(lambda: all(socket.refusals for socket in tabs))
    await settled(watchdog)

    assert all(socket.refusals == [GONE] for socket in tabs)
    assert rules.checks == [("token", 7)], "one check for the login; none for a user whose access is unchanged"
    assert colleague.refusals == []


async def test_a_change_of_everyone_s_access_makes_every_connection_checked_since_look_again(rules):
    watchdog = Watchdog()
    since = auth.changes()
    auth.forget()  # the bus was away: any change may have been missed
    watchdog.watch(Socket(8), since=since)
    await eventually(lambda: rules.checks == [("token", 8)])


async def test_once_stopped_no_timer_fires_and_nothing_is_checked(rules):
    watchdog = Watchdog()
    ending = Socket(7)
    since = auth.changes()
    auth.forget(8)
    late = Socket(8)
    watchdog.watch(ending, since=auth.changes(), ends_at=time.time() + 0.05)
    watchdog.watch(late, since=since)
    scheduled = [watchdog.timers[ending], watchdog.due_timer]
    watchdog.stop()
    assert all(timer.cancelled() for timer in scheduled), "the credential's end and the due check never fire"
    watchdog.access_changed(7)  # heard after the stop: nothing is checked any more
    watchdog.watch(Socket(8), since=since, ends_at=time.time())
    assert watchdog.tasks == set() and watchdog.timers == {} and watchdog.due_timer is None
    await asyncio.sleep(0)  # one turn of the loop: anything scheduled now would have started
    assert ending.refusals == [] and late.refusals == [] and rules.checks == []


async def test_a_lookup_that_a_change_of_its_user_overlapped_is_not_cached():
    caller = Caller(user_id=7, clinic_id=1, user={}, clinic={}, key=("token", 7))
    since = auth.changes()
    auth.forget(8)  # someone else: it does not matter to user 7's lookup
    auth.remember(caller, since)
    assert auth.cached(("token", 7)) is caller
    since = auth.changes()
    auth.forget(7)
    auth.remember(caller, since)
    assert auth.cached(("token", 7)) is None


class Lookups:
    """The domain's Access as far as a credential's lookup goes: counts them, and answers when told."""

    def __init__(self):
        self.calls = 0
        self.release = None  # a threading.Event the lookup waits for
        self.refuse = False

    def token_claims(self, raw: str) -> auth.TokenClaims:
        return auth.TokenClaims(user_id=7, clinic_id=1, sid=raw, expires_at=time.time() + 60)

    def caller_for_token(self, claims: auth.TokenClaims) -> Caller:
        self.calls += 1
        self.release.wait(5)
        if self.refuse:
            raise Refused(auth.CLOSE_FORBIDDEN, "membership ended")
        return Caller(user_id=7, clinic_id=1, user={}, clinic={}, sid=claims.sid)


@pytest.fixture
def lookups():
    import threading

    previous, stand_in = auth._access, Lookups()
    stand_in.release = threading.Event()
    auth.configure(stand_in)
    yield stand_in
    stand_in.release.set()
    auth._access = previous
    auth._cache.clear()


async def test_sockets_of_one_credential_connecting_together_share_one_lookup(lookups):
    together = [asyncio.ensure_future(auth.by_token("s1")) for _ in range(50)]
    await eventually(lambda: lookups.calls == 1)
    lookups.release.set()
    callers = {caller for caller, _ in await asyncio.gather(*together)}
    assert lookups.calls == 1 and len(callers) == 1
    await auth.by_token("other-session")  # another credential has its own lookup
    assert lookups.calls == 2


async def test_a_shared_lookup_that_is_refused_refuses_every_socket_waiting_for_it(lookups):
    lookups.refuse = True
    together = [asyncio.ensure_future(auth.by_token("s1")) for _ in range(5)]
    await eventually(lambda: lookups.calls == 1)
    lookups.release.set()
    outcomes = await asyncio.gather(*together, return_exceptions=True)
    assert lookups.calls == 1 and all(isinstance(o, Refused) and o.code == auth.CLOSE_FORBIDDEN for o in outcomes)
    lookups.refuse = False
    caller, _ = await auth.by_token("s1")  # nothing refused is kept: the next connect looks again
    assert lookups.calls == 2 and caller.user_id == 7


async def test_a_socket_that_connects_after_an_access_change_does_not_join_a_lookup_begun_before_it(lookups):
    first = asyncio.ensure_future(auth.by_token("s1"))
    await eventually(lambda: lookups.calls == 1)
    auth.forget(7)  # the user's access changed while the first lookup was under way
    second = asyncio.ensure_future(auth.by_token("s1"))
    await eventually(lambda: lookups.calls == 2)
    lookups.release.set()
    await asyncio.gather(first, second)
    assert lookups.calls == 2


async def test_a_socket_that_goes_away_does_not_cancel_the_lookup_others_wait_for(lookups):
    leaving, staying = asyncio.ensure_future(auth.by_token("s1")), asyncio.ensure_future(auth.by_token("s1"))
    await eventually(lambda: lookups.calls == 1)
    leaving.cancel()
    lookups.release.set()
    caller, _ = await staying
    assert caller.user_id == 7 and lookups.calls == 1 and leaving.cancelled()
