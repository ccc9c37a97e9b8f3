"""A patient belongs to their clinic for ever: conversations written into another clinic's patient are
given back to a patient of their own clinic, and (id, clinic) is made unique for the constraint of 0024.
The status `blocked`, which nothing honoured, goes (such patients become active)."""

from django.db import migrations, models


def checked_now(schema_editor) -> None:
    """PostgreSQL checks the deferred foreign keys of the rows just written now, not at the commit: an
    ALTER TABLE later in this migration refuses to run with their checks pending."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE", params=None)


def repair_mixed_clinics(apps, schema_editor):
    """A conversation written into another clinic's patient (a patient moved between clinics in the admin
    before this release) goes back to a patient of its own clinic: the one there with the same phone or
    WhatsApp id, else a copy of the patient made there. Its messages were always its clinic's."""
    Contact = apps.get_model("conversations", "Contact")
    Conversation = apps.get_model("conversations", "Conversation")
    mixed = Conversation.objects.exclude(clinic_id=models.F("contact__clinic_id")).select_related("contact")
    for conversation in mixed.iterator():
        moved = conversation.contact
        same = models.Q(pk__in=[])
        for key in ("phone", "whatsapp_user_id", "whatsapp_parent_user_id"):
            if getattr(moved, key):
                same |= models.Q(**{key: getattr(moved, key)})
        own = Contact.objects.filter(same, clinic_id=conversation.clinic_id).first()
        if own is None:
            fields = ("name", "phone", "whatsapp_user_id", "whatsapp_parent_user_id", "profile_name", "email")
            own = Contact.objects.create(
                clinic_id=conversation.clinic_id, status=moved.status, **{f: getattr(moved, f) for f in fields}
            )
        conversation.contact = own
        conversation.save(update_fields=["contact"])
    checked_now(schema_editor)


def unblock(apps, schema_editor):
    apps.get_model("conversations", "Contact").objects.filter(status="blocked").update(status="active")
    checked_now(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0022_api_session_password"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="contact", name="contact_status_valid"),
        migrations.RunPython(unblock, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="contact",
            name="status",
            field=models.CharField(
                choices=[("active", "Ativo"), ("erased", "Anonimizado (LGPD)")], default="active", max_length=10
            ),
        ),
        migrations.AddConstraint(
            model_name="contact",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["active", "erased"])), name="contact_status_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="contact",
            constraint=models.UniqueConstraint(fields=("id", "clinic"), name="contact_id_clinic"),
        ),
        migrations.RunPython(repair_mixed_clinics, migrations.RunPython.noop),
    ]
