"""One patient a canonical number (conversations.phones): each patient keeps the number as WhatsApp gave it
(`whatsapp_id`, where replies go), and their phone is made canonical, a Brazilian mobile with its ninth
digit. A patient whose canonical number another patient of the clinic already has is a duplicate: their
phone is left empty (their number stays their WhatsApp id, so replies still reach them), and
`manage.py merge_duplicate_contacts` finds and merges the pair. Then the database refuses any phone that is
not canonical."""

import re

from django.db import migrations, models


def checked_now(schema_editor) -> None:
    """PostgreSQL checks the deferred foreign keys of the rows just written now, not at the commit: an
    ALTER TABLE later in this migration refuses to run with their checks pending."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE", params=None)

# As conversations.phones has it today (a migration keeps its own copy of the rule it applied).
AREA_CODES = (
    "11|12|13|14|15|16|17|18|19|21|22|24|27|28|31|32|33|34|35|37|38|41|42|43|44|45|46|47|48|49|51|53|54|55|"
    "61|62|63|64|65|66|67|68|69|71|73|74|75|77|79|81|82|83|84|85|86|87|88|89|91|92|93|94|95|96|97|98|99"
)
WITHOUT_NINTH_DIGIT = f"^55({AREA_CODES})[6-9][0-9]{{7}}$"


def canonical(digits: str) -> str:
    return f"{digits[:4]}9{digits[4:]}" if re.match(WITHOUT_NINTH_DIGIT, digits) else digits


def canonical_phones(apps, schema_editor):
    Contact = apps.get_model("conversations", "Contact")
    Contact.objects.exclude(phone="").filter(whatsapp_id="").update(whatsapp_id=models.F("phone"))
    for contact in Contact.objects.filter(phone__regex=WITHOUT_NINTH_DIGIT).order_by("pk").iterator():
        wanted = canonical(contact.phone)
        taken = Contact.objects.filter(clinic_id=contact.clinic_id, phone=wanted).exclude(pk=contact.pk).exists()
        contact.phone = "" if taken else wanted
        contact.save(update_fields=["phone"])
    checked_now(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0024_contact_clinic_enforced"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="whatsapp_id",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=15, verbose_name="WhatsApp id (wa_id)"
            ),
        ),
        migrations.RunPython(canonical_phones, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="contact",
            constraint=models.CheckConstraint(
                condition=~models.Q(phone__regex=WITHOUT_NINTH_DIGIT), name="contact_phone_canonical"
            ),
        ),
    ]
