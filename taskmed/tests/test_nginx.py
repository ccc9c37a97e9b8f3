"""deploy/nginx/taskmed.conf in front of two server processes, with Debian's nginx: a login, a WhatsApp
webhook and the live frame it causes, the long-poll, and a file sent and then opened through the authorised
media view all pass through it (TLS aside: the test serves the same locations over plain HTTP on a
loopback port)."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from conftest import APP_SECRET, REQUIRE_SERVICES, free_port, whatsapp_payload
from conversations.webhooks.whatsapp import signature_of
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * 1024 * 1024)  # larger than nginx keeps in memory


def site_for(upstreams: list[str], port: int) -> str:
    """The deployed site, pointed at the test's servers and port, without its TLS and HTTP redirect."""
    site = (ROOT / "deploy/nginx/taskmed.conf").read_text()
    servers = "".join(f"    server {host};\n" for host in upstreams)
    site, found = re.subn(
        r"(upstream taskmed(?:_ws)? \{\n(?:    hash [^\n]+\n)?)(?:    server [^\n]+\n)+", rf"\g<1>{servers}", site
    )
    assert found == 2, "the upstream blocks changed shape"
    site = re.sub(r"server \{\n    listen 80;.*?\n\}\n", "", site, flags=re.S)  # the HTTP → HTTPS redirect
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{port};").replace("http2 on;", "")
    return re.sub(r"\n\s*ssl_certificate(_key)?\s[^;]+;", "", site)


@pytest.fixture
def nginx(tmp_path):
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("nginx is needed (apt-get install nginx-light): .ci/run installs it")
        pytest.skip("nginx is not installed")
    processes = []

    def start(upstreams: list[str]) -> str:
        port = free_port()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy"))
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"{user}daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{\naccess_log off;\n{temp}{site_for(upstreams, port)}\n}}\n"
        )
        check = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        processes.append(subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp_path)]))
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=1)
                return f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.1)
        pytest.fail((tmp_path / "error.log").read_text())

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


async def test_login_a_webhook_and_its_live_frame_pass_through_nginx(
    serve, nginx, clinic, member, whatsapp_channel, settings
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the servers' own
    await asyncio.to_thread(lambda: (member.set_password("senha-de-teste-123"), member.save()))
    env = server_env(TRUSTED_PROXIES="127.0.0.1")
    front = nginx([serve(env), serve(env)])

    def post(path: str, body: bytes | None, headers: dict, raw: bool = False) -> tuple[int, dict | bytes]:
        request = urllib.request.Request(f"http://{front}{path}", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read() if raw else json.loads(answer.read())

    login = json.dumps({"username": member.username, "password": "senha-de-teste-123"}).encode()
    status, tokens = await asyncio.to_thread(post, "/api/auth/token/", login, {"Content-Type": "application/json"})
    assert status == 200 and tokens["access"]
    headers = {"Authorization": f"Bearer {tokens['access']}"}
    async with connect(f"ws://{front}/ws/", additional_headers=headers, origin=f"http://{front}") as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        notification = whatsapp_payload("text")
        for change in notification["entry"][0]["changes"]:  # written now: the 24-hour reply window is open
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(int(time.time()))
        body = json.dumps(notification).encode()
        signed = {"Content-Type": "application/json", "X-Hub-Signature-256": signature_of(body, APP_SECRET)}
        status, answer = await asyncio.to_thread(post, "/webhooks/whatsapp/", body, signed)
        assert status == 200 and answer["received"]["messages"] == 1
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "message:new":
            pass
        assert frame["data"]["message"]["content"] == "Does it come in another color?"

    status, polled = await asyncio.to_thread(post, "/api/events/?after=0", None, headers)
    assert status == 200 and frame["seq"] in [event["seq"] for event in polled["events"]]

    boundary = "taskmed-upload"
    upload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="exame.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + PNG
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, sent = await asyncio.to_thread(
        post,
        f"/api/conversations/{frame['conversation_id']}/messages/",
        upload,
        {**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert status == 201 and sent["attachments"][0]["url"].startswith("/media/attachments/")
    status, served = await asyncio.to_thread(post, sent["attachments"][0]["url"], None, headers, raw=True)
    assert status == 200 and served == PNG, "the file, through nginx and the authorised view"


async def test_a_clinics_sockets_go_to_one_process_and_sockets_without_the_hint_to_any(
    serve, nginx, clinic, member, settings
):
    from realtime.tests.test_consumer import access_token
    from taskmed.tests.test_metrics import samples

    env = server_env(TRUSTED_PROXIES="127.0.0.1", METRICS_TOKEN="scraper")
    servers = [serve(env), serve(env)]
    front = nginx(servers)
    headers = {"Authorization": f"Bearer {await asyncio.to_thread(access_token, member)}"}

    def sockets_on_each() -> list[float]:
        def scrape(host):
            request = urllib.request.Request(f"http://{host}/metrics", headers={"Authorization": "Bearer scraper"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                return samples(answer.read().decode())[("taskmed_ws_connections", ())]

        return [scrape(host) for host in servers]

    async def open_sockets(path: str, count: int) -> list:
        sockets = []
        for _ in range(count):
            ws = await connect(f"ws://{front}{path}", additional_headers=headers, origin=f"http://{front}")
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["clinic"]["id"] == clinic.id
            sockets.append(ws)
        return sockets

    pinned = await open_sockets(f"/ws/?after=0&clinic={clinic.id}", 16)
    assert sorted(await asyncio.to_thread(sockets_on_each)) == [0, 16], "a clinic's sockets on one process"
    anywhere = await open_sockets("/ws/", 16)
    on_each = await asyncio.to_thread(sockets_on_each)
    assert sum(on_each) == 32 and min(on_each) > 0, f"without the hint, sockets spread: {on_each}"
    for ws in pinned + anywhere:
        await ws.close()
