"""The WhatsApp Cloud API (Meta's Graph API) over httpx: sending, media, read receipts, credential checks."""

import logging

import httpx
from django.conf import settings

from conversations.models import Contact, Message, WhatsAppChannel
from conversations.providers.base import NotSent, OutcomeUnknown, Rejected, callback_data
from conversations.questions import interactive_body

logger = logging.getLogger(__name__)

# The request never left, or the server said it did not process it.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
CAPTIONED = {"image", "video", "document"}


def graph_error(response: httpx.Response) -> str:
    """Meta's own words for an error response: '(#131047) Re-engagement message: …'."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return f"HTTP {response.status_code} from the Graph API"
    code = error.get("code")
    text = error.get("error_data", {}).get("details") or error.get("message") or "no message"
    return f"(#{code}) {text}" if code else text


class GraphClient:
    """One channel's credentials on the Graph API; every method raises NotSent, Rejected or OutcomeUnknown."""

    def __init__(self, channel: WhatsAppChannel, *, transport: httpx.BaseTransport | None = None):
        self.channel = channel
        self.http = httpx.Client(
            base_url=settings.WHATSAPP_GRAPH_URL,
            headers={"Authorization": f"Bearer {channel.access_token}"},
            timeout=httpx.Timeout(settings.WHATSAPP_TIMEOUT_SECONDS),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, *, idempotent: bool, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except NOT_SENT_ERRORS as error:
            raise NotSent(f"Could not reach WhatsApp: {error.__class__.__name__}") from error
        except httpx.HTTPError as error:
            if idempotent:
                raise NotSent(f"No answer from WhatsApp: {error.__class__.__name__}") from error
            raise OutcomeUnknown(
                f"WhatsApp did not answer ({error.__class__.__name__}); the message may have been delivered, "
                "so it was not sent again."
            ) from error
        if response.status_code == 429 or (response.status_code >= 500 and idempotent):
            raise NotSent(f"WhatsApp is busy or failing: {graph_error(response)}")
        if response.status_code >= 500:
            # The request was written and something in Meta's path failed: a 502 or 504 from its edge may
            # come after the message went out, so a send is not retried blindly.
            raise OutcomeUnknown(
                f"WhatsApp answered HTTP {response.status_code} ({graph_error(response)}); the message may have "
                "been delivered, so it was not sent again."
            )
        if response.status_code >= 400:
            raise Rejected(graph_error(response))
        return response

    def send(self, payload: dict) -> str:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", **payload}
        response = self._call("POST", f"/{self.channel.phone_number_id}/messages", json=body, idempotent=False)
        try:
            return str(response.json()["messages"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise OutcomeUnknown("WhatsApp accepted the request but sent no message id; not sent again.") from None

    def upload_media(self, *, content: bytes, file_name: str, content_type: str) -> str:
        response = self._call(
            "POST",
            f"/{self.channel.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": content_type},
            files={"file": (file_name, content, content_type)},
            idempotent=True,  # an orphan upload harms nobody; a retry is safe
        )
        return str(response.json()["id"])

    def mark_read(self, external_id: str) -> None:
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": external_id}
        self._call("POST", f"/{self.channel.phone_number_id}/messages", json=body, idempotent=True)

    def media_info(self, media_id: str) -> dict:
        return self._call("GET", f"/{media_id}", idempotent=True).json()

    def download(self, url: str, *, max_bytes: int) -> bytes:
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise NotSent(f"WhatsApp media download failed with HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise Rejected(f"WhatsApp refused the media download: HTTP {response.status_code}")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise Rejected(f"The media is larger than {max_bytes // (1024 * 1024)} MB; not kept.")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise NotSent(f"Could not download the media: {error.__class__.__name__}") from error

    def message_templates(self, business_account_id: str, *, max_pages: int = 10) -> list[dict]:
        """The Business Account's message templates (every status), page after page."""
        params = {"fields": "name,language,status,category,components", "limit": 100}
        url, rows = f"/{business_account_id}/message_templates", []
        for _ in range(max_pages):
            body = self._call("GET", url, params=params, idempotent=True).json()
            rows += body.get("data", [])
            url, params = body.get("paging", {}).get("next"), None
            if not url:
                break
        return rows

    def phone_number(self) -> dict:
        """The channel's number as Meta sees it: proves the id and the token are right."""
        params = {"fields": "display_phone_number,verified_name,quality_rating"}
        return self._call("GET", f"/{self.channel.phone_number_id}", params=params, idempotent=True).json()


def recipient_of(contact: Contact) -> dict:
    """Where the Graph API sends: the number as WhatsApp knows it (its wa_id, which may lack a Brazilian
    mobile's ninth digit), else the phone, else the patient's business-scoped user id (`recipient`), as
    Meta accepts for patients who use a username."""
    if contact.whatsapp_id or contact.phone:
        return {"to": contact.whatsapp_id or contact.phone}
    user_id = contact.whatsapp_user_id or contact.whatsapp_parent_user_id
    if not user_id:
        raise Rejected("The patient has neither a phone number nor a WhatsApp user id to send to.")
    return {"recipient": user_id}


class WhatsAppCloudProvider:
    name = "whatsapp_cloud"

    def __init__(self, channel: WhatsAppChannel):
        self.channel = channel

    def send(self, message: Message) -> str:
        client = GraphClient(self.channel)
        try:
            body = {**recipient_of(message.conversation.contact), **self._body(client, message)}
            quoted = (message.metadata.get("context") or {}).get("id")
            if quoted:  # a reply in context: WhatsApp shows the quoted message above it
                body["context"] = {"message_id": quoted}
            return client.send({**body, "biz_opaque_callback_data": callback_data(message.pk)})
        finally:
            client.close()

    def _body(self, client: GraphClient, message: Message) -> dict:
        if message.message_type == "template":
            header_file = message.attachments.first()
            media = None
            if header_file is not None:  # the file of a media header: uploaded, then named by id
                with header_file.file.open("rb") as file:
                    media_id = client.upload_media(
                        content=file.read(), file_name=header_file.file_name, content_type=header_file.content_type
                    )
                media = {"id": media_id, "file_name": header_file.file_name}
            return template_body(message.metadata["template"], media)
        attachment = message.attachments.first()
        if attachment is None and message.metadata.get("question"):
            return {
                "type": "interactive",
                "interactive": interactive_body(message.content, message.metadata["question"]),
            }
        if attachment is None:
            return {"type": "text", "text": {"body": message.content, "preview_url": False}}
        with attachment.file.open("rb") as file:
            media_id = client.upload_media(
                content=file.read(), file_name=attachment.file_name, content_type=attachment.content_type
            )
        media: dict = {"id": media_id}
        if message.message_type in CAPTIONED and message.content:
            media["caption"] = message.content
        if message.message_type == "document":
            media["filename"] = attachment.file_name
        if message.message_type == "audio" and message.metadata.get("voice"):
            media["voice"] = True  # a voice note: played in place, transcribed by WhatsApp
        return {"type": message.message_type, message.message_type: media}


def template_body(sent: dict, media: dict | None = None) -> dict:
    """An approved template with its parameters as the Graph API takes them: the header's (its text
    variables, or its file by media id), the body's — positional ({{1}}, {{2}}) in number order, named
    ({{nome}}) by name — and each button's (a URL's suffix, a quick reply's payload)."""
    template = {"name": sent["name"], "language": {"code": sent["language"]}}
    components = []
    header = sent.get("header") or {}
    kind = {"IMAGE": "image", "DOCUMENT": "document", "VIDEO": "video"}.get(header.get("format", ""))
    if kind and media:
        file = {"id": media["id"], **({"filename": media["file_name"]} if kind == "document" else {})}
        components.append({"type": "header", "parameters": [{"type": kind, kind: file}]})
    elif header.get("variables"):
        components.append({"type": "header", "parameters": _parameters(header["variables"])})
    body = _parameters(sent.get("variables") or {})
    if body:
        components.append({"type": "body", "parameters": body})
    for button in sent.get("button_parameters") or []:
        value = (
            {"type": "text", "text": button["value"]}
            if button["sub_type"] == "url"
            else {"type": "payload", "payload": button["value"]}
        )
        components.append(
            {"type": "button", "sub_type": button["sub_type"], "index": str(button["index"]), "parameters": [value]}
        )
    if components:
        template["components"] = components
    return {"type": "template", "template": template}


def _parameters(values: dict) -> list[dict]:
    if all(name.isdigit() for name in values):
        return [{"type": "text", "text": values[name]} for name in sorted(values, key=int)]
    return [{"type": "text", "parameter_name": name, "text": text} for name, text in values.items()]
