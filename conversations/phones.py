"""Phone numbers in one canonical form (DESIGN §12), made here and nowhere else: every lookup by phone —
the WhatsApp and n8n webhooks, the API, search, the admin — compares canonical numbers.

Brazil's mobiles gained a ninth digit (a 9 before the eight-digit number) between 2012 and 2016, but
WhatsApp's id (`wa_id`) of many of them predates it: `55 DD XXXXXXXX` and `55 DD 9XXXXXXXX` are one
mobile. The canonical form is the thirteen-digit one. An eight-digit number starting with 2 to 5 is a
landline and is never given a 9; other countries are as written.
"""

import re

# Brazil's area codes (DDD), as Anatel assigns them: two digits, neither a zero, not every pair in use.
BRAZIL_AREA_CODES = frozenset(
    {11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38}
    | {41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69}
    | {71, 73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96, 97, 98, 99}
)
# A mobile that predates the ninth digit: an area code, then eight digits starting with 6, 7, 8 or 9. The
# database refuses to store such a number (models.Contact): only its canonical form is kept.
MOBILE_WITHOUT_NINTH_DIGIT = "^55(" + "|".join(map(str, sorted(BRAZIL_AREA_CODES))) + ")[6-9][0-9]{7}$"
NOT_DIGITS = re.compile(r"\D")
_without_ninth_digit = re.compile(MOBILE_WITHOUT_NINTH_DIGIT)


def canonical_phone(digits: str) -> str:
    """The canonical form of E.164 digits: a Brazilian mobile written without its ninth digit gets it
    (`551187654321` → `5511987654321`); anything else is returned as given."""
    if _without_ninth_digit.match(digits):
        return f"{digits[:4]}9{digits[4:]}"
    return digits


def phone_forms(digits: str) -> list[str]:
    """Every way the number may have been stored before the canonical form: itself, and for a Brazilian
    mobile the form without its ninth digit too (what `merge_duplicate_contacts` looks for)."""
    canonical = canonical_phone(digits)
    forms = [canonical]
    if len(canonical) == 13 and canonical.startswith("55") and canonical[4] == "9":
        shorter = canonical[:4] + canonical[5:]
        if canonical_phone(shorter) == canonical:
            forms.append(shorter)
    return forms


def search_forms(digits: str) -> list[str]:
    """What the digits typed into a search box may be found as: themselves, and for a Brazilian mobile its
    other form, with or without the ninth digit (with the country code, or only the area code)."""
    forms = [digits]
    if len(digits) in (12, 13):
        forms += phone_forms(digits)
    elif len(digits) in (10, 11):
        forms += [form[2:] for form in phone_forms(f"55{digits}")]
    return list(dict.fromkeys(forms))


def digits_of(text: str) -> str:
    return NOT_DIGITS.sub("", text or "")


NO_PHONE_LABEL = "sem telefone"


def format_phone(phone: str) -> str:
    """A number as people read it: '+55 11 98765-4321' for Brazil, '+15551234567' elsewhere."""
    if not phone:
        return NO_PHONE_LABEL
    if phone.startswith("55") and len(phone) in (12, 13):
        area, local = phone[2:4], phone[4:]
        return f"+55 {area} {local[:-4]}-{local[-4:]}"
    return f"+{phone}"
