"""RFC 6238 codes: strict parsing, secrets, and finding the time step a code belongs to."""

from __future__ import annotations

import hmac
import re
import time

import pyotp
from flask_babel import gettext as _

from portal.services.errors import InvalidCode

PERIOD = 30
DIGITS = 6
DRIFT_STEPS = 1  # accept the previous and the next time step too
CODE_RE = re.compile(r"[0-9]{6}", re.ASCII)


def parse_code(raw: str | None) -> str:
    """Exactly six ASCII digits once ASCII spaces are removed; anything else is refused."""
    code = (raw or "").replace(" ", "")
    if not CODE_RE.fullmatch(code):
        raise InvalidCode(_("请输入 6 位数字验证码"))
    return code


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // PERIOD)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(step * PERIOD)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (within ±DRIFT_STEPS) whose code equals ``code``, else None."""
    step = current_step(now)
    found = None
    for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
        if hmac.compare_digest(code_at(secret, candidate), code):
            found = candidate  # keep looping: same time whatever matches
    return found


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(name=account, issuer_name=issuer)


def grouped(secret: str) -> str:
    """The secret in groups of four for typing into an app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
