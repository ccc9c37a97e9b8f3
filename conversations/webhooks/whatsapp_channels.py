"""The WhatsApp channels as the webhook needs them, held in memory: app secrets, the clinic each number
routes to, and the verification tokens. A notification is checked and routed without a query.

Reloaded when a channel changes (the change's signal drops it here at once, and a control message drops it
in every other process after the commit) and at least every RELOAD_SECONDS, as a backstop.
"""

import hashlib
import hmac
import re
import threading
import time
from dataclasses import dataclass

from conversations.models import WhatsAppChannel

RELOAD_SECONDS = 60.0


@dataclass(frozen=True)
class Directory:
    routes: dict[str, dict[str, int]]  # app secret → phone number id → clinic id
    secrets: dict[str, str]  # phone number id → its app secret
    verify_tokens: tuple[str, ...]
    loaded_at: float


_directory: Directory | None = None
_lock = threading.Lock()


def _load() -> Directory:
    routes: dict[str, dict[str, int]] = {}
    tokens = []
    for number_id, clinic_id, secret, token in WhatsAppChannel.objects.values_list(
        "phone_number_id", "clinic_id", "app_secret", "verify_token"
    ):
        routes.setdefault(secret, {})[number_id] = clinic_id
        tokens.append(token)
    secrets = {number: secret for secret, numbers in routes.items() for number in numbers}
    return Directory(routes=routes, secrets=secrets, verify_tokens=tuple(tokens), loaded_at=time.monotonic())


def directory() -> Directory:
    global _directory
    found = _directory
    if found is None or time.monotonic() - found.loaded_at > RELOAD_SECONDS:
        with _lock:
            found = _directory = _load()
    return found


def fresh() -> Directory | None:
    """The directory if it is in memory and fresh, else None: what the event loop reads, once per
    notification, since reading it again could need a query (a change may drop it meanwhile)."""
    found = _directory
    return found if found is not None and time.monotonic() - found.loaded_at <= RELOAD_SECONDS else None


def forget(message: dict | None = None) -> None:
    """A channel changed: read them again on next use (a control message's handler, and the signal's)."""
    global _directory
    _directory = None


def signature_of(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


NUMBER_IN_BODY = re.compile(rb'"phone_number_id"\s*:\s*"([^"]{1,64})"')


def verified_secret(
    body: bytes, header: str, *, found: Directory | None = None, named_only: bool = False
) -> str | None:
    """The app secret that signed `body`, each compared in constant time: first the secret of the number
    the body names (one HMAC in the usual case), else every channel's (not with `named_only`: the event
    loop does at most one HMAC for a request nobody has authenticated yet). `found`: the directory read."""
    if not header.startswith("sha256="):
        return None
    given = header.encode("utf-8", "replace")
    found = found or directory()
    named = NUMBER_IN_BODY.search(body)
    secret = found.secrets.get(named.group(1).decode("utf-8", "replace")) if named is not None else None
    if secret is not None and hmac.compare_digest(signature_of(body, secret).encode(), given):
        return secret
    if named_only:
        return None
    match = None
    for secret in found.routes:
        if hmac.compare_digest(signature_of(body, secret).encode(), given):
            match = secret
    return match


def routes_of(secret: str, found: Directory | None = None) -> dict[str, int]:
    """The numbers of the app that signed, and their clinics: a number of another app is not routed."""
    return (found or directory()).routes.get(secret, {})


def verify_token_matches(token: str) -> bool:
    given = token.encode("utf-8", "replace")
    return any(hmac.compare_digest(given, known.encode()) for known in directory().verify_tokens)
