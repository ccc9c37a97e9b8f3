"""The embedded default boots with nothing set; production refuses unsafe settings; URLs pick backends."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import websockets.sync.client
from websockets.exceptions import ConnectionClosed

from conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
RANDOM_KEY = "Jx7-q2LrV9sTn4WbYc8ZpKm3HdFgA6eR1uQo5iS0tEvNwB"
# What deploy/taskmed.env.example says, for an operator who copies it and forgets to replace it.
DOCUMENTED_SECRET_KEY = next(
    line.split("=", 1)[1]
    for line in (ROOT / "deploy/taskmed.env.example").read_text().splitlines()
    if line.startswith("SECRET_KEY=")
)


def print_settings(env: dict[str, str], *expressions: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh process with `env` and print the settings' `expressions` (over `s`) as JSON."""
    values = ", ".join(expressions)
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps([{values}], default=str))"
    )
    return subprocess.run(
        [PYTHON, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "taskmed.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def embedded_server(serve, tmp_path):
    return serve(clean_env(SQLITE_PATH=str(tmp_path / "boot.sqlite3")))


def test_the_embedded_default_serves_the_login_page_and_static_files(embedded_server):
    with urllib.request.urlopen(f"http://{embedded_server}/accounts/login/", timeout=10) as response:
        assert response.status == 200
        assert "Entrar" in response.read().decode()
    with urllib.request.urlopen(f"http://{embedded_server}/static/css/app.css", timeout=10) as response:
        assert response.status == 200


def test_the_embedded_default_refuses_an_unauthenticated_websocket_with_4401(embedded_server):
    with (
        websockets.sync.client.connect(
            f"ws://{embedded_server}/ws/", origin=f"http://{embedded_server}", open_timeout=10
        ) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.send('{"type": "ping"}')
        ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4401


def test_embedded_defaults():
    result = print_settings(
        clean_env(),
        "s.DEBUG",
        's.DATABASES["default"]["ENGINE"]',
        's.CACHES["default"]["BACKEND"]',
        'getattr(s, "CHANNEL_LAYERS", None)',
        "s.SECRET_KEY[:9]",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        True,
        "django.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
        None,  # the realtime bus is realtime.bus's own; no Channels layer is used
        "dev-only-",
    ]
    assert (ROOT / ".secret_key").exists()
    assert ".secret_key" in (ROOT / ".gitignore").read_text()


def test_service_urls_select_postgres_with_a_pool_and_redis_for_the_cache():
    result = print_settings(
        clean_env(DATABASE_URL="postgres://postgres@127.0.0.1:5432/taskmed", REDIS_URL="redis://127.0.0.1:6379/0"),
        's.DATABASES["default"]["ENGINE"]',
        "__import__('django.db').db.connection.vendor",
        's.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]',
        's.DATABASES["default"]["CONN_MAX_AGE"]',
        's.CACHES["default"]["BACKEND"]',
        'getattr(s, "CHANNEL_LAYERS", None)',
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "taskmed.postgresql",  # Django's PostgreSQL backend with a circuit breaker on connecting
        "postgresql",
        10,
        0,
        "django_redis.cache.RedisCache",
        None,  # the realtime bus speaks to Redis itself (realtime.bus)
    ]


@pytest.mark.parametrize(
    "env,complaint",
    [
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "inbox.taskmed.com.br"}, "SECRET_KEY repeats too few"),
        ({"SECRET_KEY": DOCUMENTED_SECRET_KEY, "ALLOWED_HOSTS": "inbox.taskmed.com.br"}, "placeholder"),
        ({"SECRET_KEY": RANDOM_KEY}, "ALLOWED_HOSTS"),
        ({"SECRET_KEY": RANDOM_KEY, "ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"DEBUG": "maybe"}, "not a boolean"),
    ],
)
def test_production_refuses_unsafe_settings_with_a_clear_message(env, complaint):
    result = print_settings(clean_env(**env), "s.DEBUG")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and complaint in result.stderr


def test_production_starts_with_safe_settings():
    result = print_settings(
        clean_env(SECRET_KEY=RANDOM_KEY, ALLOWED_HOSTS="inbox.taskmed.com.br"), "s.DEBUG", "s.ALLOWED_HOSTS"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, ["inbox.taskmed.com.br"]]


def test_the_tenancy_triggers_of_sqlite_come_back_after_any_migration(tmp_path):
    """SQLite rebuilds a table to alter it, and its triggers go with the old one: every migrate makes the
    rules that keep a patient in their clinic again (conversations.tenancy_rules)."""
    import sqlite3

    database = tmp_path / "rules.sqlite3"
    env = clean_env(SQLITE_PATH=str(database))
    migrate = [PYTHON, "manage.py", "migrate", "-v", "0"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, timeout=120)
    with sqlite3.connect(database) as db:
        db.execute("DROP TRIGGER contact_clinic_fixed")  # what a later migration's table rebuild does
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, timeout=120)
    with sqlite3.connect(database) as db:
        triggers = sorted(name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    assert triggers == [
        "contact_clinic_fixed",
        "conversation_contact_same_clinic_insert",
        "conversation_contact_same_clinic_update",
    ]
