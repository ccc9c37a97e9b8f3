"""Templates with a header and buttons, as Meta's Graph API lists and takes them: the header's variables or
its file (uploaded to the media endpoint, named by id), URL-button suffixes and quick-reply payloads, the
components sent exactly as Meta documents them (Meta mocked at the HTTP boundary, the real worker running);
whatever the approved template cannot take is a 400 naming the field before anything is stored."""

import json

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.models import Message
from conversations.tests.api.test_reply_window import PNID, WABA, age, conversation, graph  # noqa: F401
from conversations.tests.test_delivery import accepted, run_worker

pytestmark = pytest.mark.django_db(transaction=True)
PDF = b"%PDF-1.4\n" + b"0" * 64
TEMPLATES = {
    "data": [
        {
            "name": "exame_pronto",
            "language": "pt_BR",
            "status": "APPROVED",
            "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "DOCUMENT"},
                {"type": "BODY", "text": "Olá, {{1}}. Seu exame está pronto."},
                {"type": "FOOTER", "text": "Clínica Aurora"},
                {
                    "type": "BUTTONS",
                    "buttons": [
                        {"type": "URL", "text": "Ver no portal", "url": "https://resultados.example.com/{{1}}"},
                        {"type": "QUICK_REPLY", "text": "Recebi"},
                    ],
                },
            ],
        },
        {
            "name": "confirmar_horario",
            "language": "pt_BR",
            "status": "APPROVED",
            "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Consulta com {{1}}"},
                {"type": "BODY", "text": "Confirma {{1}}?"},
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirmar"}]},
            ],
        },
    ]
}


@pytest.fixture
def templates(graph):  # noqa: F811
    graph.get(f"/{WABA}/message_templates").mock(return_value=httpx.Response(200, json=TEMPLATES))
    return graph


def post(api, thread, body, file=None):
    url = f"/api/conversations/{thread.pk}/messages/"
    if file is None:
        return api.post(url, body, format="json")
    form = {key: json.dumps(value) if isinstance(value, dict) else value for key, value in body.items()}
    return api.post(url, {**form, "file": file}, format="multipart")


def test_a_template_with_a_document_header_and_buttons_goes_out_as_meta_documents_it(
    jwt_client,
    member,
    conversation,  # noqa: F811
    templates,
):
    upload = templates.post(f"/{PNID}/media").mock(return_value=httpx.Response(200, json={"id": "88"}))
    send = templates.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.TPL2"))
    age(conversation, 30)
    api = jwt_client(member)
    listed = {t["name"]: t for t in api.get("/api/templates/").json()["results"]}
    exam = listed["exame_pronto"]
    assert exam["header_media"] == "document" and exam["footer"] == "Clínica Aurora"
    assert exam["button_parameters"] == [
        {"index": 0, "type": "url", "text": "Ver no portal", "url": "https://resultados.example.com/{{1}}"},
        {"index": 1, "type": "quick_reply", "text": "Recebi"},
    ]
    body = {"template": "exame_pronto", "variables": {"1": "Maria"}, "button_parameters": {"0": "x7k2"}}
    laudo = SimpleUploadedFile("laudo.pdf", PDF, content_type="application/pdf")
    response = post(api, conversation, body, file=laudo)
    assert response.status_code == 201, response.content
    run_worker()
    assert upload.call_count == 1
    sent = json.loads(send.calls.last.request.content)["template"]
    assert sent == {
        "name": "exame_pronto",
        "language": {"code": "pt_BR"},
        "components": [
            {"type": "header", "parameters": [{"type": "document", "document": {"id": "88", "filename": "laudo.pdf"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Maria"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "x7k2"}]},
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "1",
                "parameters": [{"type": "payload", "payload": "Recebi"}],
            },
        ],
    }
    message = Message.objects.get(pk=response.json()["id"])
    assert message.attachments.get().file_name == "laudo.pdf" and message.status == "sent"
    assert message.metadata["template"]["footer"] == "Clínica Aurora"


def test_a_text_header_takes_its_variables(jwt_client, member, conversation, templates):  # noqa: F811
    send = templates.post(f"/{PNID}/messages").mock(return_value=accepted("wamid.TPL3"))
    age(conversation, 30)
    body = {"template": "confirmar_horario", "variables": {"1": "amanhã"}, "header": {"1": "Dra. Helena"}}
    response = post(jwt_client(member), conversation, body)
    assert response.status_code == 201, response.content
    run_worker()
    components = json.loads(send.calls.last.request.content)["template"]["components"]
    assert components[0] == {"type": "header", "parameters": [{"type": "text", "text": "Dra. Helena"}]}
    assert components[2] == {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "0",
        "parameters": [{"type": "payload", "payload": "Confirmar"}],
    }
    assert (
        Message.objects.get(pk=response.json()["id"]).metadata["template"]["header"]["text"]
        == "Consulta com Dra. Helena"
    )


@pytest.mark.parametrize(
    "name,body,file,field",
    [
        ("exame_pronto", {"variables": {"1": "Maria"}, "button_parameters": {"0": "x"}}, None, "file"),
        ("exame_pronto", {"variables": {"1": "Maria"}}, "pdf", "button_parameters"),
        (
            "exame_pronto",
            {"variables": {"1": "Maria"}, "button_parameters": {"0": "x", "5": "y"}},
            "pdf",
            "button_parameters",
        ),
        ("exame_pronto", {"variables": {"1": "Maria"}, "button_parameters": {"0": "x"}}, "png", "file"),
        ("confirmar_horario", {"variables": {"1": "amanhã"}}, None, "header"),
        ("confirmar_horario", {"variables": {"1": "amanhã"}, "header": {"1": "x"}}, "pdf", "file"),
        ("confirmar_horario", {"variables": {"1": "amanhã"}, "header": "texto"}, None, "header"),
    ],
)
def test_what_the_approved_template_cannot_take_is_a_400_naming_the_field(
    jwt_client,
    member,
    conversation,  # noqa: F811
    templates,
    name,
    body,
    file,
    field,
):
    age(conversation, 30)
    upload = {
        "pdf": SimpleUploadedFile("laudo.pdf", PDF, content_type="application/pdf"),
        "png": SimpleUploadedFile("foto.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, content_type="image/png"),
    }.get(file)
    before = Message.objects.count()
    response = post(jwt_client(member), conversation, {"template": name, **body}, file=upload)
    assert response.status_code == 400 and response.json()["field"] == field, response.content
    if file == "png" and name == "exame_pronto":
        assert "takes a document, not a image" in response.json()["detail"]
    assert Message.objects.count() == before


@pytest.mark.parametrize(
    "form,field",
    [
        ({"variables": "[" * 5000}, "variables"),
        ({"variables": "{}", "header": '{"\\ud800": "x"}'}, "header"),
        ({"variables": "[1, 2]"}, "variables"),
        ({"variables": "{}", "voice": "true"}, "voice"),
    ],
)
def test_a_malformed_multipart_template_form_is_a_400_never_a_500(
    jwt_client,
    member,
    conversation,  # noqa: F811
    templates,
    form,
    field,
):
    age(conversation, 30)
    laudo = SimpleUploadedFile("laudo.pdf", PDF, content_type="application/pdf")
    response = jwt_client(member).post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"template": "confirmar_horario", **form, "file": laudo},
        format="multipart",
    )
    assert response.status_code == 400 and response.json()["field"].split(".")[0] == field, response.content


def test_a_template_whose_buttons_this_inbox_cannot_fill_is_refused_before_storing(
    jwt_client,
    member,
    conversation,  # noqa: F811
    graph,  # noqa: F811
):
    coupon = {
        "data": [
            {
                "name": "cupom",
                "language": "pt_BR",
                "status": "APPROVED",
                "category": "MARKETING",
                "components": [
                    {"type": "BODY", "text": "Seu cupom"},
                    {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "X"}]},
                ],
            }
        ]
    }
    graph.get(f"/{WABA}/message_templates").mock(return_value=httpx.Response(200, json=coupon))
    age(conversation, 30)
    api = jwt_client(member)
    assert api.get("/api/templates/").json()["results"][0]["unsupported"] == "copy_code buttons"
    response = post(api, conversation, {"template": "cupom", "variables": {}})
    assert response.status_code == 400 and response.json()["field"] == "template"
    assert not Message.objects.filter(message_type="template").exists()
