"""One patient a canonical number (conversations.phones): each patient keeps the number as WhatsApp gave it
(`whatsapp_id`, where replies go), and their phone is made canonical, a Brazilian mobile with its ninth
digit. A patient whose canonical number another patient of the clinic already has is a duplicate: their
phone is left empty (their number stays their WhatsApp id, so replies still reach them), and
`manage.py merge_duplicate_contacts` finds and merges the pair. Then the database refuses any phone that is
not canonical.

Not atomic, so that webhooks are not held up on a large clinic: the column is added at once (a constant
default), the patients are rewritten a thousand at a time, each batch its own transaction, and on
PostgreSQL the check is added NOT VALID and validated apart, which reads the rows without blocking writes.
"""

import re

from django.db import migrations, models, transaction

# As conversations.phones has it today (a migration keeps its own copy of the rule it applied).
AREA_CODES = (
    "11|12|13|14|15|16|17|18|19|21|22|24|27|28|31|32|33|34|35|37|38|41|42|43|44|45|46|47|48|49|51|53|54|55|"
    "61|62|63|64|65|66|67|68|69|71|73|74|75|77|79|81|82|83|84|85|86|87|88|89|91|92|93|94|95|96|97|98|99"
)
WITHOUT_NINTH_DIGIT = f"^55({AREA_CODES})[6-9][0-9]{{7}}$"
BATCH = 1000
CONSTRAINT = models.CheckConstraint(condition=~models.Q(phone__regex=WITHOUT_NINTH_DIGIT), name="contact_phone_canonical")


def canonical(digits: str) -> str:
    return f"{digits[:4]}9{digits[4:]}" if re.match(WITHOUT_NINTH_DIGIT, digits) else digits


def canonical_phones(apps, schema_editor):
    Contact = apps.get_model("conversations", "Contact")
    while ids := list(
        Contact.objects.exclude(phone="").filter(whatsapp_id="").order_by("pk").values_list("pk", flat=True)[:BATCH]
    ):
        with transaction.atomic():
            Contact.objects.filter(pk__in=ids).update(whatsapp_id=models.F("phone"))
    while batch := list(Contact.objects.filter(phone__regex=WITHOUT_NINTH_DIGIT).order_by("pk")[:BATCH]):
        with transaction.atomic():
            for contact in batch:
                wanted = canonical(contact.phone)
                taken = Contact.objects.filter(clinic_id=contact.clinic_id, phone=wanted).exclude(pk=contact.pk)
                contact.phone = "" if taken.exists() else wanted
                contact.save(update_fields=["phone"])


def add_check(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        check = f"NOT (phone::text ~ '{WITHOUT_NINTH_DIGIT}')"
        schema_editor.execute(
            f"ALTER TABLE conversations_contact ADD CONSTRAINT {CONSTRAINT.name} CHECK ({check}) NOT VALID", params=None
        )
        schema_editor.execute(f"ALTER TABLE conversations_contact VALIDATE CONSTRAINT {CONSTRAINT.name}", params=None)
    else:
        schema_editor.add_constraint(apps.get_model("conversations", "Contact"), CONSTRAINT)


def drop_check(apps, schema_editor):
    schema_editor.remove_constraint(apps.get_model("conversations", "Contact"), CONSTRAINT)


class Migration(migrations.Migration):
    atomic = False

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
        migrations.RunPython(canonical_phones, migrations.RunPython.noop, atomic=False),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_check, drop_check, atomic=False)],
            state_operations=[migrations.AddConstraint(model_name="contact", constraint=CONSTRAINT)],
        ),
    ]
