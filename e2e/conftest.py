"""What the browser tests share: Debian's Chromium driven by Playwright, real server and worker processes,
staff who log in with a password, and Meta's webhooks posted from outside."""

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import APP_SECRET, whatsapp_payload
from conversations.webhooks.whatsapp import signature_of

CHROMIUM = "/usr/bin/chromium"
# As the machine's notes say: without the background-networking flags Chromium keeps dialling out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "senha-de-teste-123"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def real_passwords(settings):
    """The server verifies with the production hasher, not the tests' fast one."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]

    def set_password(user) -> str:
        user.set_password(PASSWORD)
        user.save()
        return user.username

    return set_password


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is needed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def worker(tmp_path):
    """The task worker beside the server (deliveries through the simulator, at once)."""
    processes = []

    def start(env: dict[str, str]) -> None:
        log = (tmp_path / "worker.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--no-reload", "--queue-name", "*", "--interval", "0.2"],
            cwd=ROOT,
            env={
                **env,
                "SIMULATOR_DELIVERED_AFTER_SECONDS": "0",
                "SIMULATOR_READ_AFTER_SECONDS": "1",
                "WHATSAPP_GRAPH_URL": "http://127.0.0.1:9/",  # tests reach nothing outside the machine
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        processes.append(process)
        # Ready once it says so: a machine under load takes seconds to load Django, and a test's first
        # delivery must not be timed against the worker's start.
        deadline = time.monotonic() + 60
        while b"Starting worker" not in (tmp_path / "worker.log").read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start: {(tmp_path / 'worker.log').read_text()[-2000:]}")
            time.sleep(0.1)

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def in_thread(action, **arguments):
    """Call an action from a test while Playwright's loop owns the test's thread (Django refuses the ORM
    under a running loop): in a thread of its own, with its own connection."""
    from django.db import connection

    outcome = {}

    def run():
        try:
            outcome["result"] = action(**arguments)
        except BaseException as error:
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def post_webhook(host: str, payload: dict) -> int:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://{host}/webhooks/whatsapp/",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, APP_SECRET)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def log_in(page, host: str, username: str, path: str = "/accounts/login/") -> None:
    page.goto(f"http://{host}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_load_state()


def live(page, timeout: int = 15_000) -> None:
    page.wait_for_selector('.connection[data-state="live"]', timeout=timeout)


def patient_writes(name: str, phone: str, text: str, at: int | None = None, message_id: str | None = None) -> dict:
    """Meta's recorded text notification, from this patient, stamped at `at` (epoch seconds, default now)."""
    at = at or int(time.time())
    payload = whatsapp_payload("text")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": name}, "wa_id": phone}]
    message = value["messages"][0]
    message_id = message_id or f"wamid.e2e-{phone}-{at}-{time.monotonic_ns()}"
    message.update({"from": phone, "id": message_id, "timestamp": str(at), "text": {"body": text}})
    return payload


def screenshot(page, name: str) -> None:
    """Written by the tests for the README: what a user sees (docs/screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
