"""The clinic's labels: made by its staff, put on its conversations, the list filtered by them."""

import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from conversations import events
from conversations.actions.audit import record_audit
from conversations.errors import InvalidInput, NotAMember
from conversations.models import Clinic, Label
from conversations.selectors import is_member

COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@transaction.atomic
def create_label(*, clinic: Clinic, actor: AbstractBaseUser, name: str, color: str, ip: str | None = None) -> Label:
    if not is_member(actor, clinic.pk):
        raise NotAMember("Only the clinic's staff make its labels.")
    name = " ".join(name.split()) if isinstance(name, str) else ""
    if not name or len(name) > 40:
        raise InvalidInput("A label's name is 1–40 characters.", field="name")
    if not isinstance(color, str) or not COLOR.fullmatch(color):
        raise InvalidInput("A label's colour is #rrggbb, e.g. #2f80ed.", field="color")
    try:
        with transaction.atomic():
            label = Label.objects.create(clinic=clinic, name=name, color=color.lower())
    except IntegrityError:
        raise InvalidInput(f"The clinic already has a label {name!r}.", field="name") from None
    record_audit(clinic_id=clinic.pk, actor=actor, action="label.created", obj=label, ip=ip)
    events.publish_labels_changed(clinic.pk)
    return label
