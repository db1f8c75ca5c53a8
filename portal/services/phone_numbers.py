"""Mobile numbers for 短信: what a user types → E.164 (the one stored form), and the masked form shown back.

Parsing and validity come from ``phonenumbers`` (Google's libphonenumber metadata: which prefixes are
mobile in which country changes every year; a hand-written regex would go stale). Numbers without a
country code are read as mainland China ones.
"""

from __future__ import annotations

import re

import phonenumbers
from flask_babel import lazy_gettext as _l
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from portal.services.errors import InvalidInput

DEFAULT_REGION = "CN"
INVALID = _l("请输入正确的手机号码")
MAX_INPUT = 32  # longer input is not a phone number (and never reaches the parser)
ALLOWED = re.compile(r"[0-9 +\-().]+")  # ASCII digits and separators: no letters (1-800-FLOWERS), no controls
SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalise(raw: str) -> str:
    """'13800138000', '+86 138 0013 8000', '86-138-0013-8000' → '+8613800138000'; InvalidInput otherwise.

    Only numbers that can receive a text message are accepted: landlines, toll-free and premium
    numbers are refused.
    """
    text = (raw or "").strip()
    if len(text) > MAX_INPUT or not ALLOWED.fullmatch(text):
        raise InvalidInput(str(INVALID))
    number = _parse(text)
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidInput(str(INVALID))
    if phonenumbers.number_type(number) not in SMS_TYPES:
        raise InvalidInput(str(INVALID))
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _parse(text: str) -> phonenumbers.PhoneNumber | None:
    """A mainland number written with its country code but without '+' (86138…, 0086138…) is common."""
    candidates = [text]
    digits = "".join(c for c in text if c.isdigit())
    if not text.startswith("+") and digits.startswith(("86", "0086")):
        candidates.append("+" + digits.removeprefix("00"))
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, DEFAULT_REGION)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return number
    return None


def mask(e164: str) -> str:
    """'+8613800138000' → '138****8000'; other countries keep the code and fewer digits the shorter the number.

    '+447911123456' → '+44 791****3456' (10 or more digits: first 3 and last 4), '+85291234567' →
    '+852 91****67' (at least four digits stay hidden).
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "****"
    national = phonenumbers.national_significant_number(number)
    if number.country_code == 86 and len(national) == 11:
        return f"{national[:3]}****{national[-4:]}"
    if len(national) >= 10:
        return f"+{number.country_code} {national[:3]}****{national[-4:]}"
    if len(national) >= 8:
        return f"+{number.country_code} {national[:2]}****{national[-2:]}"
    return f"+{number.country_code} ****{national[-2:]}"
