"""Reading typed settings from the environment, and the development secret key kept out of git."""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
DEV_KEY_PREFIX = "dev-only-"
# The placeholders of deploy/taskmed.env.example start so: a value copied without replacing it.
PLACEHOLDER_PREFIX = "CHANGE"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def unsafe_secret_key(key: str) -> str | None:
    """Why `key` must not sign a production deployment's sessions and tokens, or None when it may."""
    if key.startswith(DEV_KEY_PREFIX):
        return "is the development key"
    if key.upper().startswith(PLACEHOLDER_PREFIX):
        return "is still the placeholder of deploy/taskmed.env.example"
    if len(key) < 32:
        return "is shorter than 32 characters"
    if len(set(key)) < 5:
        return "repeats too few characters to be random"
    return None


def development_secret_key(path: Path) -> str:
    """Return the development key stored at `path`, creating it once; it is never used in production."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if not key.startswith(DEV_KEY_PREFIX):
        key = DEV_KEY_PREFIX + secrets.token_urlsafe(48)
        path.write_text(key + "\n")
        path.chmod(0o600)
    return key
