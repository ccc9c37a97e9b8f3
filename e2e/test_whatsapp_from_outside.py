"""WhatsApp both ways, checked from outside as an operator would: real server and worker processes, Meta's
Graph API replaced by a recorder on 127.0.0.1 (WHATSAPP_GRAPH_URL), staff using the HTTP API with a
password login, the patient writing through the signed webhook. A quoted reply goes out with
context.message_id; a staff reaction as type reaction naming the message; a question with buttons as type
interactive; and a patient's reaction lands on the original message, not as a message."""

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from e2e.conftest import ROOT, patient_writes, post_webhook
from realtime.tests.test_scale_out import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
PHONE = "5511987654321"
PNID = "106540352242922"


class GraphRecorder:
    """Meta's Graph API as a recorder: every message the worker sends, answered as Meta answers."""

    def __init__(self):
        self.sent: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                recorder.sent.append({"path": self.path, "body": body})
                answer = json.dumps(
                    {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.OUT{len(recorder.sent)}"}]}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, seconds: float = 20) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [sent["body"] for sent in self.sent if predicate(sent["body"])]
            if found:
                return found[-1]
            time.sleep(0.1)
        raise AssertionError(f"the worker sent nothing like that: {self.sent}")


def call(host: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://{host}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def recorder():
    recorder = GraphRecorder()
    yield recorder
    recorder.server.shutdown()


def test_quotes_reactions_and_questions_go_to_whatsapp_as_meta_documents_them(
    real_passwords, clinic, member, whatsapp_channel, serve, recorder, tmp_path
):
    username = real_passwords(member)
    env = server_env(WHATSAPP_GRAPH_URL=recorder.url)
    host = serve(env)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--queue-name", "*", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while b"Starting worker" not in (tmp_path / "worker.log").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)  # ready once it says so
    try:
        assert (
            post_webhook(host, patient_writes("Maria Souza", PHONE, "Posso levar meu filho?", message_id="wamid.Q1"))
            == 200
        )
        token = call(host, "POST", "/api/auth/token/", body={"username": username, "password": "senha-de-teste-123"})[
            "access"
        ]
        conversation = call(host, "GET", "/api/conversations/", token)["results"][0]["id"]
        messages = f"/api/conversations/{conversation}/messages/"
        question = next(
            m for m in call(host, "GET", messages, token)["results"] if m["content"] == "Posso levar meu filho?"
        )

        reply = call(host, "POST", messages, token, {"content": "Pode sim!", "reply_to": question["id"]})
        sent = recorder.wait_for(lambda body: body.get("type") == "text")
        assert sent["context"] == {"message_id": "wamid.Q1"} and sent["text"]["body"] == "Pode sim!"

        call(host, "POST", f"{messages}{question['id']}/reaction/", token, {"emoji": "👍"})
        sent = recorder.wait_for(lambda body: body.get("type") == "reaction")
        assert sent["reaction"] == {"message_id": "wamid.Q1", "emoji": "👍"} and sent["to"] == PHONE

        call(
            host, "POST", messages, token, {"content": "Confirma amanhã às 14h?", "buttons": ["Confirmar", "Remarcar"]}
        )
        sent = recorder.wait_for(lambda body: body.get("type") == "interactive")
        assert sent["interactive"]["type"] == "button"
        assert [b["reply"]["title"] for b in sent["interactive"]["action"]["buttons"]] == ["Confirmar", "Remarcar"]

        # The patient reacts to the clinic's answer (WhatsApp's id for it, as the recorder answered).
        answered = next(m for m in call(host, "GET", messages, token)["results"] if m["id"] == reply["id"])
        payload = patient_writes("Maria Souza", PHONE, "", message_id="wamid.R1")
        message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        message.pop("text")
        message.update({"type": "reaction", "reaction": {"message_id": answered["external_id"], "emoji": "❤️"}})
        assert post_webhook(host, payload) == 200
        after = call(host, "GET", messages, token)["results"]
        reacted = next(m for m in after if m["id"] == reply["id"])
        assert reacted["metadata"]["reactions"]["patient"]["emoji"] == "❤️"
        assert not [m for m in after if m["content"] == "❤️"], "never a message of its own"
    finally:
        worker.terminate()
        worker.wait(timeout=10)
        log.close()
