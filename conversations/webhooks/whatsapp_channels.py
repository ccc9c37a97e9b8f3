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
from dataclasses import dataclass, field

from conversations.models import WhatsAppChannel

RELOAD_SECONDS = 60.0
NUMBER_IN_BODY = re.compile(rb'"phone_number_id"\s*:\s*"([^"]{1,64})"')
ACCOUNT_IN_BODY = re.compile(rb'"id"\s*:\s*"([0-9]{1,32})"')  # an entry's WhatsApp Business Account


@dataclass(frozen=True)
class Directory:
    routes: dict[str, dict[str, int]]  # app secret → phone number id → clinic id
    secrets: dict[str, str]  # phone number id → its app secret
    verify_tokens: tuple[str, ...]
    loaded_at: float
    accounts: dict[str, str] = field(default_factory=dict)  # WhatsApp Business Account id → its app secret

    def secret_named_in(self, body: bytes) -> str | None:
        """The one secret to check `body` against: that of the first number of ours it names, else of the
        first Business Account of ours (a number removed here that Meta still reports on), else the
        installation's only app secret, if it has one; None when nothing here can have signed it."""
        for found in NUMBER_IN_BODY.finditer(body):
            if (secret := self.secrets.get(found.group(1).decode("utf-8", "replace"))) is not None:
                return secret
        for found in ACCOUNT_IN_BODY.finditer(body):
            if (secret := self.accounts.get(found.group(1).decode())) is not None:
                return secret
        return next(iter(self.routes)) if len(self.routes) == 1 else None


_directory: Directory | None = None
_lock = threading.Lock()


def _load() -> Directory:
    routes: dict[str, dict[str, int]] = {}
    tokens, accounts = [], {}
    for number_id, clinic_id, secret, token, account in WhatsAppChannel.objects.values_list(
        "phone_number_id", "clinic_id", "app_secret", "verify_token", "business_account_id"
    ):
        routes.setdefault(secret, {})[number_id] = clinic_id
        tokens.append(token)
        if account:
            accounts[account] = secret
    secrets = {number: secret for secret, numbers in routes.items() for number in numbers}
    return Directory(
        routes=routes, secrets=secrets, verify_tokens=tuple(tokens), loaded_at=time.monotonic(), accounts=accounts
    )


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


def verified_secret(body: bytes, header: str, *, found: Directory | None = None) -> str | None:
    """The app secret that signed `body`, or None. One HMAC at most, whoever sent it, compared in constant
    time: against the one secret the body points to (Directory.secret_named_in). A notification comes from
    one Meta app and names that app's numbers: one signed by another app than its numbers' is not theirs.
    `found`: the directory read."""
    secret = (found or directory()).secret_named_in(body)
    return secret if secret is not None and signed_with(body, header, secret) else None


def signed_with(body: bytes, header: str, secret: str) -> bool:
    """Whether `header` (X-Hub-Signature-256) is `body`'s signature with `secret`: one HMAC, compared in
    constant time."""
    if not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature_of(body, secret).encode(), header.encode("utf-8", "replace"))


def routes_of(secret: str, found: Directory | None = None) -> dict[str, int]:
    """The numbers of the app that signed, and their clinics: a number of another app is not routed."""
    return (found or directory()).routes.get(secret, {})


def verify_token_matches(token: str) -> bool:
    given = token.encode("utf-8", "replace")
    return any(hmac.compare_digest(given, known.encode()) for known in directory().verify_tokens)
