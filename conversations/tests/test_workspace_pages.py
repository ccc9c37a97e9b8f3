"""The workspace's pages and fragments over HTTP, as the browser asks for them: URLs, filters, rows, the
timeline, the board, the authorised media view and the Content-Security-Policy; another clinic gets
nothing from any of them."""

import re
import zoneinfo
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.actions.conversations import add_conversation_action, assign_conversation
from conversations.actions.inbound import receive_inbound_message
from conversations.actions.messages import mark_read, send_outbound_message, update_message_status
from conversations.actions.notes import add_note
from conversations.actions.privacy import purge_expired
from conversations.actions.support import remove_channel
from conversations.models import AuditEvent, ConversationAction, Message, MessageAttachment, Note, Role

pytestmark = pytest.mark.usefixtures("simulated_number")  # replies go somewhere: the demo's kind of number

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\xdac\xfc\xcf\xc0\xf0\x1f\x00\x05\x01\x02\x00\xa5\xbd\x9b\xa1\x00\x00\x00\x00IEND\xaeB`\x82"
)
FRAGMENT = {"HTTP_X_FRAGMENT": "row"}


@pytest.fixture
def maria(clinic):
    return receive_inbound_message(clinic=clinic, phone="5511987654321", contact_name="Maria Souza", content="Oi")


@pytest.fixture
def staff(client, member):
    client.force_login(member)
    client.get("/inbox/")  # the only clinic becomes the session's
    return client


def test_the_root_leads_to_the_inbox_keeping_the_filters(client, member):
    response = client.get("/?tab=mine&status=pending")
    assert response.status_code == 302 and response["Location"] == "/inbox/?tab=mine&status=pending"


def test_a_conversation_has_its_own_url_with_timeline_header_and_patient_panel(staff, maria, member):
    send_outbound_message(conversation=maria.conversation, sender=member, content="Olá, Maria!")
    page = staff.get(f"/inbox/{maria.conversation.pk}/")
    assert page.status_code == 200
    html = page.text
    assert 'role="log"' in html and '<label for="composer-text" class="visually-hidden">Mensagem</label>' in html
    assert "Maria Souza" in html and "+55 11 98765-4321" in html and "Olá, Maria!" in html
    assert 'data-set-status="resolved"' in html and "Atribuir a mim" in html and 'aria-label="Paciente"' in html
    timeline = html[html.index('role="log"') :]
    assert timeline.index(">Oi<") < timeline.index("Olá, Maria!"), "oldest first"
    assert '<span class="sender">Você</span>' in html and 'data-tick="pending"' in html


def test_the_composer_says_before_typing_that_no_whatsapp_number_is_connected(
    staff, maria, simulated_number, django_user_model
):
    url = f"/inbox/{maria.conversation.pk}/"
    assert "Nenhum número de WhatsApp conectado" not in staff.get(url).text
    support = django_user_model.objects.create_superuser("suporte", password="senha-de-teste-123")
    remove_channel(simulated_number, actor=support)
    html = staff.get(url).text
    assert 'data-whatsapp-number="no"' in html and "Nenhum número de WhatsApp conectado" in html
    refused = staff.post(f"/inbox/{maria.conversation.pk}/send/", {"content": "Olá"}, follow=True)
    assert "Nenhum número de WhatsApp conectado" in refused.text
    assert not Message.objects.filter(content="Olá").exists()


@pytest.mark.parametrize("path", ["/inbox/{id}/", "/board/cards/{id}/", "/inbox/{id}/messages/?id={message}"])
def test_another_clinics_conversation_is_a_404_everywhere(client, outsider, maria, path):
    client.force_login(outsider)
    client.get("/inbox/")
    url = path.format(id=maria.conversation.pk, message=maria.message.pk)
    response = client.get(url, HTTP_X_FRAGMENT="part") if "messages" in path or "cards" in path else client.get(url)
    assert response.status_code == 404
    assert "Maria Souza" not in response.text and ">Oi<" not in response.text


def test_another_clinics_row_is_never_rendered(client, outsider, maria):
    client.force_login(outsider)
    client.get("/inbox/")
    response = client.get(f"/inbox/rows/?status=all&id={maria.conversation.pk}", **FRAGMENT)
    assert response.status_code == 204 and response.content == b""
    assert "Maria Souza" not in client.get("/inbox/?status=all").text
    assert "Maria Souza" not in client.get("/board/").text


def test_fragments_answer_401_to_a_signed_out_browser_and_pages_redirect(client, maria):
    assert client.get(f"/inbox/rows/?id={maria.conversation.pk}", **FRAGMENT).status_code == 401
    page = client.get(f"/inbox/{maria.conversation.pk}/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/?next=/inbox/")


def test_tabs_status_and_search_filter_the_list_from_the_url(staff, clinic, member, maria, make_member):
    bruno = make_member(clinic, first_name="Bruno")
    ana = receive_inbound_message(clinic=clinic, phone="5511911110001", contact_name="Ana Dias", content="Exame")
    assign_conversation(conversation=maria.conversation, assignee=member, actor=member)
    assign_conversation(conversation=ana.conversation, assignee=bruno, actor=member)
    carla = receive_inbound_message(clinic=clinic, phone="5511922220002", contact_name="Carla", content="Receita")

    def names(query: str) -> list[str]:
        return re.findall(r'<span class="name">([^<]+)</span>', staff.get(f"/inbox/?{query}").text)

    assert names("") == ["Carla", "Ana Dias", "Maria Souza"]
    assert names("tab=mine") == ["Maria Souza"]
    assert names("tab=unassigned") == ["Carla"]
    assert names("q=receita") == ["Carla"], "the text of a message matches"
    assert names("q=98765") == ["Maria Souza"], "part of the phone matches"
    assert names("status=resolved") == []
    assert names("status=all&tab=unassigned") == [carla.contact.display_name]
    assert staff.get("/inbox/?q=rec%00eita").status_code == 200, "a NUL in the search is no 500"


def test_a_row_asked_for_with_filters_is_204_once_it_no_longer_matches(staff, maria, member):
    url = f"/inbox/rows/?tab=unassigned&id={maria.conversation.pk}"
    assert staff.get(url, **FRAGMENT).status_code == 200
    assign_conversation(conversation=maria.conversation, assignee=member, actor=member)
    assert staff.get(url, **FRAGMENT).status_code == 204


def test_the_preview_says_who_wrote_last(staff, clinic, member, make_member, maria):
    colleague = make_member(clinic, Role.PROFESSIONAL, first_name="Marina", last_name="Assis")

    def preview() -> str:
        html = staff.get(f"/inbox/rows/?id={maria.conversation.pk}", **FRAGMENT).text
        return re.search(r'<span class="preview">([^<]*)</span>', html).group(1)

    assert preview() == "Oi"
    send_outbound_message(conversation=maria.conversation, sender=member, content="Olá")
    assert preview() == "Você: Olá"
    send_outbound_message(conversation=maria.conversation, sender=colleague, content="Bom dia")
    assert preview() == "Marina: Bom dia"
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="Lembrete", sender_type="ai")
    assert preview() == "Assistente: Lembrete"


def test_the_list_pages_by_cursor_for_infinite_scroll(staff, clinic):
    base = timezone.now()
    for n in range(55):
        receive_inbound_message(
            clinic=clinic, phone=f"55119000{n:05d}", content=f"n{n}", happened_at=base - timedelta(minutes=n)
        )
    first = staff.get("/inbox/").text
    assert first.count('class="conversation ') == 50
    cursor = re.search(r'data-cursor="([^"]+)"', first).group(1)
    rest = staff.get(f"/inbox/rows/?cursor={cursor}", **FRAGMENT).text
    assert rest.count('class="conversation ') == 5 and "data-cursor" not in rest
    assert "n54" in rest and "n0<" not in rest
    assert staff.get("/inbox/rows/?cursor=nonsense", **FRAGMENT).status_code == 400


def test_the_timeline_groups_by_day_in_the_clinics_zone(staff, clinic, maria):
    noon = timezone.now().replace(hour=15, minute=0)  # 12:00 in São Paulo
    for days in (3, 2):
        receive_inbound_message(
            clinic=clinic, phone="5511987654321", content=f"há {days} dias", happened_at=noon - timedelta(days=days)
        )
    html = staff.get(f"/inbox/{maria.conversation.pk}/").text
    assert html.count('class="day"') == 3 and ">Hoje</p>" in html


def test_older_pages_bring_the_messages_and_actions_before_the_first_shown(staff, clinic, member, maria):
    start = timezone.now() - timedelta(hours=3)
    for n in range(60):
        receive_inbound_message(
            clinic=clinic, phone="5511987654321", content=f"m{n:02d}", happened_at=start + timedelta(minutes=n)
        )
        if n == 5:
            add_conversation_action(conversation=maria.conversation, action_type="appointment_created")
            ConversationAction.objects.update(created_at=start + timedelta(minutes=5, seconds=30))
    mark_read(user=member, conversation=maria.conversation, message=Message.objects.order_by("-pk").first())
    page = staff.get(f"/inbox/{maria.conversation.pk}/").text
    timeline = page.split('role="log"')[1].split('class="typing-line"')[0]
    assert timeline.count('class="message ') == 50 and "data-load-older" in timeline
    assert "Consulta agendada" not in timeline, "before the first message shown: it comes with the older page"
    oldest_shown = int(re.search(r'data-message-id="(\d+)"', timeline).group(1))
    older = staff.get(f"/inbox/{maria.conversation.pk}/messages/?before={oldest_shown}", **FRAGMENT).text
    assert older.count('class="message ') == 11 and "data-load-older" not in older
    assert older.index(">m05<") < older.index("Consulta agendada") < older.index(">m06<"), "in time order"


def test_a_conversation_with_many_unread_opens_at_the_first_of_them(staff, clinic, member, maria):
    mark_read(user=member, conversation=maria.conversation, message=maria.message)
    for n in range(70):
        receive_inbound_message(clinic=clinic, phone="5511987654321", content=f"novo {n}")
    html = staff.get(f"/inbox/{maria.conversation.pk}/").text
    first_unread = re.search(r'class="message [^"]*first-unread"[^>]*', html).group(0)
    assert 'data-first-unread="' in html and "Novas mensagens" in html
    assert Message.objects.get(pk=int(re.search(r'data-message-id="(\d+)"', first_unread).group(1))).content == "novo 0"


def test_a_failed_message_shows_the_reason_and_can_be_resent_once(staff, maria, member, jwt_client):
    failed = send_outbound_message(conversation=maria.conversation, sender=member, content="Retorno amanhã").message
    update_message_status(message=failed, status="failed", error="(#131047) Re-engagement message")
    html = staff.get(f"/inbox/{maria.conversation.pk}/messages/?id={failed.pk}", **FRAGMENT).text
    assert "(#131047) Re-engagement message" in html and "data-resend" in html
    url = f"/api/conversations/{maria.conversation.pk}/messages/{failed.pk}/resend/"
    body = {"client_id": "9b2f8a8e-2f51-4c59-9d0e-4a8f5f0e7c11"}
    api = jwt_client(member)
    first, again = api.post(url, body, format="json"), api.post(url, body, format="json")
    assert first.status_code == 201 and again.status_code == 200 and first.json()["id"] == again.json()["id"]
    assert (first.json()["content"], first.json()["status"]) == ("Retorno amanhã", "pending")
    assert AuditEvent.objects.filter(action="message.resent").count() == 1
    sent = Message.objects.get(pk=first.json()["id"])
    refused = api.post(f"/api/conversations/{maria.conversation.pk}/messages/{sent.pk}/resend/", {}, format="json")
    assert refused.status_code == 400 and refused.json()["field"] == "message_id"
    twice = api.post(url, {"client_id": "1b2f8a8e-2f51-4c59-9d0e-4a8f5f0e7c12"}, format="json")
    assert twice.status_code == 400 and "resent already" in twice.json()["detail"]
    html = staff.get(f"/inbox/{maria.conversation.pk}/messages/?id={failed.pk}", **FRAGMENT).text
    assert "Reenviada" in html and "data-resend" not in html


def test_a_message_whose_delivery_is_unknown_says_so_and_offers_a_resend(staff, maria, member):
    uncertain = send_outbound_message(conversation=maria.conversation, sender=member, content="Retorno").message
    update_message_status(message=uncertain, status="unknown", error="WhatsApp answered HTTP 504")
    html = staff.get(f"/inbox/{maria.conversation.pk}/messages/?id={uncertain.pk}", **FRAGMENT).text
    assert 'data-tick="unknown"' in html and "Entrega incerta: o WhatsApp pode ter recebido" in html
    assert "WhatsApp answered HTTP 504" in html and "data-resend" in html


def test_a_resent_file_is_a_copy_of_its_own_so_purging_the_failed_original_keeps_it(
    staff, maria, member, jwt_client, clinic
):
    photo = SimpleUploadedFile("receita.png", PNG, content_type="image/png")
    failed = send_outbound_message(conversation=maria.conversation, sender=member, content="", attachment=photo).message
    update_message_status(message=failed, status="failed", error="(#131053) Media upload error")
    url = f"/api/conversations/{maria.conversation.pk}/messages/{failed.pk}/resend/"
    resent = jwt_client(member).post(url, {}, format="json").json()
    original, copy = failed.attachments.get(), MessageAttachment.objects.get(message_id=resent["id"])
    assert copy.file.name != original.file.name and copy.file_name == "receita.png"

    Message.objects.filter(pk=failed.pk).update(created_at=timezone.now() - timedelta(days=400))  # past retention
    clinic.retention_days = 365
    clinic.save(update_fields=["retention_days"])
    purge_expired(clinic=clinic)
    assert not Message.objects.filter(pk=failed.pk).exists()
    served = staff.get(f"/media/attachments/{copy.pk}/")
    assert served.status_code == 200 and b"".join(served.streaming_content) == PNG


def test_user_text_is_shown_as_text_everywhere(staff, clinic):
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    result = receive_inbound_message(clinic=clinic, phone="5511987654321", contact_name=evil, content=evil)
    for url in (
        "/inbox/",
        f"/inbox/{result.conversation.pk}/",
        f"/inbox/rows/?id={result.conversation.pk}",
        f"/inbox/{result.conversation.pk}/messages/?id={result.message.pk}",
        "/board/",
    ):
        html = staff.get(url, **FRAGMENT).text if "rows" in url or "messages" in url else staff.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


def test_html_in_every_text_field_is_stored_as_given_and_shown_as_text(staff, clinic, member, make_member):
    """Whatever staff, patients, support or the automation type: a patient's names, a message, a note, a
    clinical action's data, a label, a quick reply, a file's name, a colleague's name."""
    from conversations.actions.conversations import set_labels
    from conversations.actions.labels import create_label
    from conversations.actions.replies import create_quick_reply
    from conversations.models import Contact, Label, QuickReply

    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    short = "<img src=x onerror=alert(3)>"  # for the fields of 40 characters
    result = receive_inbound_message(
        clinic=clinic,
        phone="5511987654321",
        contact_name=evil,
        profile_name=evil,
        whatsapp_username="mari.souza",
        content=evil,
    )
    conversation = result.conversation
    member.first_name = short
    member.save(update_fields=["first_name"])
    assign_conversation(conversation=conversation, assignee=member, actor=member)
    note = add_note(conversation=conversation, author=member, content=evil)
    action = add_conversation_action(
        conversation=conversation, action_type="appointment_created", action_data={"note": evil}
    )
    admin = make_member(clinic, Role.ADMIN)
    label = create_label(clinic=clinic, actor=admin, name=short, color="#aa0000")
    set_labels(conversation=conversation, labels=[label.pk], actor=member)
    create_quick_reply(clinic=clinic, actor=admin, shortcut="mal", content=evil)
    upload = SimpleUploadedFile(f"{short}.png", PNG, content_type="image/png")
    sent = send_outbound_message(conversation=conversation, sender=member, content="", attachment=upload).message

    contact = Contact.objects.get(pk=conversation.contact_id)
    assert (contact.name, contact.profile_name, Message.objects.get(pk=result.message.pk).content) == (evil,) * 3
    assert Note.objects.get(pk=note.pk).content == evil and QuickReply.objects.get().content == evil
    assert ConversationAction.objects.get(pk=action.pk).action_data == {"note": evil}
    assert Label.objects.get().name == short and sent.attachments.get().file_name == f"{short}.png"

    pages = ["/inbox/", f"/inbox/{conversation.pk}/", "/board/", "/quick-replies/", "/search/?q=alert"]
    fragments = [
        f"/inbox/rows/?id={conversation.pk}",
        f"/inbox/{conversation.pk}/messages/?id={result.message.pk}",
        f"/inbox/{conversation.pk}/messages/?id={sent.pk}",
        f"/inbox/{conversation.pk}/messages/?note={note.pk}",
        f"/inbox/{conversation.pk}/messages/?action={action.pk}",
        f"/board/cards/{conversation.pk}/",
    ]
    shown = [(url, staff.get(url).text) for url in pages] + [
        (url, staff.get(url, **FRAGMENT).text) for url in fragments
    ]
    for url, html in shown:
        assert "<script>alert" not in html and "<img src=x" not in html, url
    escaped = "".join(html for _, html in shown)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in escaped and "&lt;img src=x onerror=alert(3)&gt;" in escaped


def test_pages_carry_a_content_security_policy_without_inline_scripts(staff, maria):
    page = staff.get(f"/inbox/{maria.conversation.pk}/")
    policy = page["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]+)", policy).group(1)
    assert script_src.strip() == "'self'" and "frame-ancestors 'none'" in policy
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert scripts and all('src="' in attributes or 'type="application/json"' in attributes for attributes in scripts)
    assert staff.get("/board/")["Content-Security-Policy"] == policy


# --- The authorised media view -----------------------------------------------------------------------------


@pytest.fixture
def files(maria, member):
    def send(name: str, content: bytes, content_type: str) -> MessageAttachment:
        upload = SimpleUploadedFile(name, content, content_type=content_type)
        message = send_outbound_message(conversation=maria.conversation, sender=member, content="", attachment=upload)
        return message.message.attachments.get()

    return send


def test_an_image_is_served_inline_to_the_clinics_staff_with_nosniff(staff, files):
    image = files("exame.png", PNG, "image/png")
    response = staff.get(f"/media/attachments/{image.pk}/")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff" and "sandbox" in response["Content-Security-Policy"]
    assert "attachment" not in response.get("Content-Disposition", "")
    assert b"".join(response.streaming_content) == PNG


def test_a_document_is_always_a_download_never_a_page(staff, files, member):
    pdf = files("receita.pdf", b"%PDF-1.4 <html><script>alert(1)</script>", "application/pdf")
    MessageAttachment.objects.filter(pk=pdf.pk).update(content_type="text/html")  # as a lying upload would be
    response = staff.get(f"/media/attachments/{pdf.pk}/")
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert (
        response["Content-Disposition"].startswith("attachment;") and "receita.pdf" in response["Content-Disposition"]
    )
    assert response["X-Content-Type-Options"] == "nosniff"


def test_media_is_refused_to_another_clinic_and_to_strangers(client, files, outsider, jwt_client, member):
    image = files("exame.png", PNG, "image/png")
    url = f"/media/attachments/{image.pk}/"
    assert client.get(url).status_code == 401
    client.force_login(outsider)
    client.get("/inbox/")
    assert client.get(url).status_code == 404
    assert jwt_client(outsider).get(url).status_code == 404
    assert jwt_client(member).get(url).status_code == 200, "an API token of the clinic opens it"
    assert client.get("/media/attachments/999999/").status_code == 404


def test_the_api_points_attachments_at_the_authorised_view(files, maria, jwt_client, member):
    image = files("exame.png", PNG, "image/png")
    detail = jwt_client(member).get(f"/api/conversations/{maria.conversation.pk}/").json()
    urls = [a["url"] for m in detail["messages"] for a in m["attachments"]]
    assert urls == [f"/media/attachments/{image.pk}/"]


# --- Without scripts ---------------------------------------------------------------------------------------


def test_without_scripts_staff_reply_change_status_and_assign_by_form(staff, maria, member):
    page = staff.get(f"/inbox/{maria.conversation.pk}/").text
    client_id = re.search(r'name="client_id" value="([^"]+)"', page).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    url = f"/inbox/{maria.conversation.pk}/"
    for _ in range(2):  # the same form posted twice (a reload) sends once
        sent = staff.post(f"{url}send/", {"content": "Olá pelo formulário", "client_id": client_id})
        assert sent.status_code == 302 and sent["Location"] == url
    assert Message.objects.filter(content="Olá pelo formulário").count() == 1
    assert "csrfmiddlewaretoken" in page and token
    staff.post(f"{url}change/", {"status": "pending"})
    staff.post(f"{url}change/", {"assignee": str(member.pk)})
    maria.conversation.refresh_from_db()
    assert (maria.conversation.status, maria.conversation.assignee) == ("pending", member)
    refused = staff.post(f"{url}send/", {"content": "   "}, follow=True)
    assert "Mensagem não enviada" in refused.text


def test_another_clinics_conversation_cannot_be_written_by_form(client, outsider, maria):
    client.force_login(outsider)
    client.get("/inbox/")
    url = f"/inbox/{maria.conversation.pk}/"
    assert client.post(f"{url}send/", {"content": "invasão"}).status_code == 404
    assert client.post(f"{url}change/", {"status": "resolved"}).status_code == 404
    assert client.post(f"{url}patient/", {"name": "invasão"}).status_code == 404
    maria.conversation.refresh_from_db()
    assert maria.conversation.status == "open" and not Message.objects.filter(content="invasão").exists()
    assert maria.conversation.contact.name != "invasão"


# --- Internal notes ------------------------------------------------------------------------------------


def test_a_note_sits_in_the_timeline_marked_as_internal_and_as_text(staff, maria, member, make_member, clinic):
    bruno = make_member(clinic, first_name="Bruno", last_name="Lima")
    add_note(conversation=maria.conversation, author=bruno, content="<b>Ligar</b> amanhã, @julia")
    note = Note.objects.get()
    url = f"/inbox/{maria.conversation.pk}/"
    html = staff.get(url).text
    timeline = html[html.index('role="log"') :]
    assert timeline.index(">Oi<") < timeline.index(f'data-note-id="{note.pk}"'), "in time order"
    assert 'class="note-badge">Nota interna<' in timeline and '<span class="sender">Bruno</span>' in timeline
    assert "&lt;b&gt;Ligar&lt;/b&gt; amanhã" in timeline and "<b>Ligar" not in timeline
    part = staff.get(f"{url}messages/?note={note.pk}", **FRAGMENT)
    assert part.status_code == 200 and f'data-note-id="{note.pk}"' in part.text
    assert staff.get(f"{url}messages/?note=999999", **FRAGMENT).status_code == 204
    assert 'name="mode" value="note"' in html and "Nota interna" in html


def test_without_scripts_a_note_is_written_by_form_and_never_sent(staff, maria, member):
    url = f"/inbox/{maria.conversation.pk}/"
    answer = staff.post(f"{url}send/", {"mode": "note", "content": "Só para a equipe"})
    assert answer.status_code == 302 and answer["Location"] == url
    assert Note.objects.get().content == "Só para a equipe" and Note.objects.get().author == member
    assert not Message.objects.filter(content="Só para a equipe").exists()
    refused = staff.post(f"{url}send/", {"mode": "note", "content": " "}, follow=True)
    assert "Nota não salva" in refused.text and Note.objects.count() == 1


def test_a_row_asked_for_after_a_patients_message_reads_the_staff_only_to_name_a_colleague(
    staff, clinic, make_member, maria
):
    colleague = make_member(clinic, Role.PROFESSIONAL, first_name="Marina", last_name="Assis")
    url = f"/inbox/rows/?id={maria.conversation.pk}"
    staff.get(url, **FRAGMENT)

    def staff_read() -> bool:
        with CaptureQueriesContext(connection) as queries:
            assert staff.get(url, **FRAGMENT).status_code == 200
        return any('ORDER BY "auth_user"."first_name"' in q["sql"] for q in queries)  # selectors.staff_of

    assert not staff_read()  # the patient wrote last: nobody to name
    send_outbound_message(conversation=maria.conversation, sender=colleague, content="Bom dia")
    assert staff_read()


def test_another_clinics_notes_are_neither_shown_nor_written(client, outsider, maria, member):
    add_note(conversation=maria.conversation, author=member, content="sigilo")
    client.force_login(outsider)
    client.get("/inbox/")
    url = f"/inbox/{maria.conversation.pk}/"
    note = Note.objects.get()
    assert client.get(f"{url}messages/?note={note.pk}", **FRAGMENT).status_code == 404
    assert client.post(f"{url}send/", {"mode": "note", "content": "invasão"}).status_code == 404
    assert Note.objects.count() == 1


def test_without_scripts_a_conversation_is_marked_unread_by_form(staff, maria, member, client, outsider):
    mark_read(user=member, conversation=maria.conversation, message=maria.message)
    url = f"/inbox/{maria.conversation.pk}/"
    assert "Marcar como não lida" in staff.get(url).text
    answer = staff.post(f"{url}unread/")
    assert answer.status_code == 302 and answer["Location"] == "/inbox/"
    row = staff.get(f"/inbox/rows/?id={maria.conversation.pk}", **FRAGMENT).text
    assert '<span class="unread" aria-label="1 não lidas">1</span>' in row
    client.force_login(outsider)
    client.get("/inbox/")
    assert client.post(f"{url}unread/").status_code == 404


def test_the_composer_tells_the_window_and_a_late_free_text_by_form_is_refused(staff, maria, member):
    url = f"/inbox/{maria.conversation.pk}/"
    assert "Janela do WhatsApp aberta até" in staff.get(url).text
    Message.objects.filter(pk=maria.message.pk).update(created_at=timezone.now() - timedelta(days=2))
    page = staff.get(url).text
    assert 'data-reply-window-ends-at="' in page and "Enviar modelo aprovado" in page
    refused = staff.post(f"{url}send/", {"content": "Bom dia!"}, follow=True)
    assert "Mensagem não enviada" in refused.text and "24-hour window" in refused.text
    assert not Message.objects.filter(content="Bom dia!").exists()


# --- Quick replies -------------------------------------------------------------------------------------


def test_clinic_admins_manage_quick_replies_in_the_browser(client, clinic, make_member):
    from conversations.models import QuickReply

    admin = make_member(clinic, Role.ADMIN)
    client.force_login(admin)
    page = client.get("/quick-replies/")
    assert page.status_code == 200 and "Nova resposta rápida" in page.text and "Respostas rápidas" in page.text
    created = client.post("/quick-replies/", {"action": "create", "shortcut": "/Endereco", "content": "Rua A, 10"})
    assert created.status_code == 302
    reply = QuickReply.objects.get()
    assert (reply.shortcut, reply.content) == ("endereco", "Rua A, 10")
    client.post("/quick-replies/", {"action": "change", "id": reply.pk, "shortcut": "end", "content": "Rua B, 20"})
    reply.refresh_from_db()
    assert (reply.shortcut, reply.content) == ("end", "Rua B, 20")
    refused = client.post("/quick-replies/", {"action": "create", "shortcut": "a b", "content": "x"}, follow=True)
    assert "Não foi salva" in refused.text and QuickReply.objects.count() == 1
    client.post("/quick-replies/", {"action": "delete", "id": reply.pk})
    assert not QuickReply.objects.exists()


def test_other_staff_see_quick_replies_but_cannot_change_them(staff, clinic, make_member, outsider, client):
    from conversations.actions.replies import create_quick_reply
    from conversations.models import QuickReply

    admin = make_member(clinic, Role.ADMIN)
    reply = create_quick_reply(clinic=clinic, actor=admin, shortcut="oi", content="<b>Olá</b>")
    page = staff.get("/quick-replies/").text
    assert "/oi" in page and "&lt;b&gt;Olá&lt;/b&gt;" in page and "Nova resposta rápida" not in page
    refused = staff.post("/quick-replies/", {"action": "delete", "id": reply.pk}, follow=True)
    assert "Não foi salva" in refused.text and QuickReply.objects.exists()
    client.force_login(outsider)  # an admin, of another clinic
    client.get("/inbox/")
    assert "/oi" not in client.get("/quick-replies/").text
    gone = client.post(
        "/quick-replies/", {"action": "change", "id": reply.pk, "shortcut": "x", "content": "y"}, follow=True
    )
    assert "não existe" in gone.text and QuickReply.objects.get().content == "<b>Olá</b>"


# --- Labels and snooze ---------------------------------------------------------------------------------


def test_without_scripts_labels_and_snooze_are_set_by_form_and_filter_the_list(staff, clinic, maria, member):
    from conversations.actions.labels import create_label

    receive_inbound_message(clinic=clinic, phone="5511922220002", contact_name="Carlos", content="Oi")
    urgent = create_label(clinic=clinic, actor=member, name="Urgente", color="#d62728")
    url = f"/inbox/{maria.conversation.pk}/"
    staff.post(f"{url}change/", {"set_labels": "1", "labels": [str(urgent.pk)]})
    assert list(maria.conversation.labels.values_list("name", flat=True)) == ["Urgente"]
    labelled = staff.get(f"/inbox/?label={urgent.pk}").text
    assert "Maria Souza" in labelled and "Carlos" not in labelled and 'class="label-chip"' in labelled

    local = (timezone.now() + timedelta(days=1)).astimezone(zoneinfo.ZoneInfo(clinic.timezone))
    staff.post(f"{url}change/", {"snoozed_until": local.strftime("%Y-%m-%dT%H:%M")})
    maria.conversation.refresh_from_db()
    assert abs(maria.conversation.snoozed_until - local.replace(second=0, microsecond=0)) < timedelta(seconds=1)
    open_list = staff.get("/inbox/").text
    assert "Carlos" in open_list and "Maria Souza" not in open_list, "snoozed: out of the open list"
    snoozed = staff.get("/inbox/?status=snoozed").text
    assert "Maria Souza" in snoozed and "⏰ até" in snoozed and "Carlos" not in snoozed
    refused = staff.post(f"{url}change/", {"snoozed_until": "ontem"}, follow=True)
    assert "não foram entendidas" in refused.text
    staff.post(f"{url}change/", {"snoozed_until": ""})
    maria.conversation.refresh_from_db()
    assert maria.conversation.snoozed_until is None
    assert "Carlos" in staff.get("/inbox/").text and "Maria Souza" in staff.get("/inbox/").text

    staff.post("/labels/new/", {"name": "Retorno", "color": "#2ca02c", "conversation": maria.conversation.pk})
    assert "Retorno" in staff.get(url).text


def test_another_clinics_labels_never_show_or_apply(client, outsider, clinic, maria, member, other_clinic):
    from conversations.actions.labels import create_label

    ours = create_label(clinic=clinic, actor=member, name="Sigilo interno", color="#111111")
    client.force_login(outsider)
    client.get("/inbox/")
    assert "Sigilo interno" not in client.get("/inbox/").text
    own = receive_inbound_message(clinic=other_clinic, phone="5511933330003", content="Oi").conversation
    answer = client.post(f"/inbox/{own.pk}/change/", {"set_labels": "1", "labels": [str(ours.pk)]}, follow=True)
    assert "Não foi possível alterar" in answer.text and not own.labels.exists()


# --- Search --------------------------------------------------------------------------------------------


def test_the_search_page_shows_matches_as_text_and_opens_the_conversation_at_the_message(staff, clinic, maria, member):
    evil = receive_inbound_message(
        clinic=clinic, phone="5511987654321", content="<script>x</script> preciso remarcar a consulta"
    ).message
    for n in range(60):  # the found message is older than the first window of 50
        latest = receive_inbound_message(clinic=clinic, phone="5511987654321", content=f"depois {n}").message
    mark_read(user=member, conversation=maria.conversation, message=latest)  # read: the page opens at the end
    page = staff.get("/search/", {"q": "consulta"}).text
    assert "<script>x" not in page, "shown as text (PostgreSQL's snippet leaves tags out; the plain one escapes)"
    assert "Maria Souza" in page and f"?m={evil.pk}#m{evil.pk}" in page
    if connection.vendor == "postgresql":  # full-text search marks the words it found
        assert "<mark>consulta</mark>" in page
    opened = staff.get(f"/inbox/{maria.conversation.pk}/", {"m": evil.pk}).text
    assert f'data-focus-message="{evil.pk}"' in opened and f'id="m{evil.pk}"' in opened
    assert f'id="m{evil.pk}"' not in staff.get(f"/inbox/{maria.conversation.pk}/").text, "not in the usual window"
    assert "Digite ao menos duas letras" in staff.get("/search/", {"q": "a"}).text


def test_another_clinic_finds_nothing_of_ours(client, outsider, maria):
    client.force_login(outsider)
    client.get("/inbox/")
    page = client.get("/search/", {"q": "Oi"}).text
    assert "Maria Souza" not in page and f"m={maria.message.pk}" not in page


@pytest.mark.parametrize(
    "method,path,data",
    [
        ("get", "/inbox/{id}/?m=²", None),
        ("get", "/inbox/{id}/?m=" + "9" * 5000, None),
        ("get", "/inbox/?label=²", None),
        ("get", "/inbox/rows/?label=" + "9" * 30, None),
        ("post", "/inbox/{id}/change/", {"set_labels": "1", "labels": ["²", "9" * 5000]}),
        ("post", "/inbox/{id}/change/", {"assignee": "²"}),
        ("post", "/inbox/{id}/change/", {"snoozed_until": "9999-12-31T23:59"}),
        ("post", "/labels/new/", {"name": "Cor", "color": "#2f80ed\n", "conversation": "²"}),
        ("post", "/quick-replies/", {"action": "change", "id": "²", "shortcut": "x", "content": "y"}),
    ],
)
def test_odd_ids_times_and_colours_in_urls_and_forms_are_refused_not_500(staff, maria, method, path, data):
    from conversations.models import Label

    url = path.format(id=maria.conversation.pk)
    response = getattr(staff, method)(url, data, **FRAGMENT) if data is None else staff.post(url, data, follow=True)
    assert response.status_code in (200, 204), response.status_code
    maria.conversation.refresh_from_db()
    assert maria.conversation.snoozed_until is None and not Label.objects.exists()


def test_a_search_result_far_back_opens_the_latest_window_not_the_whole_conversation(staff, maria, monkeypatch):
    from conversations.web import inbox

    monkeypatch.setattr(inbox, "PAGE_SIZE", 5)
    monkeypatch.setattr(inbox, "MAX_FIRST_WINDOW", 5)
    monkeypatch.setattr(inbox, "MAX_AT_MESSAGE", 8)
    for n in range(20):
        receive_inbound_message(clinic=maria.conversation.clinic, phone="5511987654321", content=f"depois {n}")
    page = staff.get(f"/inbox/{maria.conversation.pk}/", {"m": maria.message.pk}).text
    assert page.count('class="message inbound') == 8 and "depois 19" in page and "depois 11" not in page
    assert "Carregar mensagens anteriores" in page


# --- Every page route has its tenancy check ------------------------------------------------------------


def test_every_page_route_has_a_tenancy_check():
    """Each named route of the site (the API's are walked by api/test_tenancy.py), and the test that proves
    another clinic's staff get nothing of it; a new page fails here until it has one."""
    from django.urls import get_resolver

    from conversations.tests.test_app_pages import (
        test_the_notification_preferences_need_a_login_and_show_the_members_own_clinic,
    )
    from conversations.tests.test_manager_pages import (
        test_another_clinics_admin_sees_and_changes_only_their_own_hours,
        test_another_clinics_hours_never_reach_the_scripts,
        test_only_admins_see_reports_and_each_only_their_clinics,
    )
    from conversations.tests.test_merge_patients import (
        test_another_clinics_patient_is_never_found_nor_merged_from_the_page,
    )
    from conversations.tests.test_web import test_a_clinic_the_user_does_not_belong_to_cannot_be_chosen
    from realtime.tests.test_http import test_another_clinics_events_are_never_returned

    checked = {
        "inbox": test_another_clinics_row_is_never_rendered,
        "conversation": test_another_clinics_conversation_is_a_404_everywhere,
        "inbox-rows": test_another_clinics_row_is_never_rendered,
        "timeline-part": test_another_clinics_conversation_is_a_404_everywhere,
        "send-reply": test_another_clinics_conversation_cannot_be_written_by_form,
        "change-conversation": test_another_clinics_conversation_cannot_be_written_by_form,
        "correct-patient": test_another_clinics_conversation_cannot_be_written_by_form,
        "merge-patients": test_another_clinics_patient_is_never_found_nor_merged_from_the_page,
        "mark-unread": test_without_scripts_a_conversation_is_marked_unread_by_form,
        "quick-replies": test_other_staff_see_quick_replies_but_cannot_change_them,
        "new-label": test_another_clinics_labels_never_show_or_apply,
        "search": test_another_clinic_finds_nothing_of_ours,
        "board": test_another_clinics_row_is_never_rendered,
        "board-card": test_another_clinics_conversation_is_a_404_everywhere,
        "attachment": test_media_is_refused_to_another_clinic_and_to_strangers,
        "choose_clinic": test_a_clinic_the_user_does_not_belong_to_cannot_be_chosen,
        "api-events": test_another_clinics_events_are_never_returned,
        "business-hours": test_another_clinics_admin_sees_and_changes_only_their_own_hours,
        "reports": test_only_admins_see_reports_and_each_only_their_clinics,
        "inbox-hours": test_another_clinics_hours_never_reach_the_scripts,
        "notification-settings": test_the_notification_preferences_need_a_login_and_show_the_members_own_clinic,
    }
    # A redirect, signing in and out, operators' counts; the app's manifest, service worker and offline page.
    no_clinic_data = {"home", "login", "logout", "metrics", "manifest", "service-worker", "offline"}
    pages = {
        pattern.name
        for pattern in get_resolver().url_patterns
        if getattr(pattern, "name", None)  # the includes (admin, api, webhooks) are checked elsewhere
    }
    assert pages == set(checked) | no_clinic_data
