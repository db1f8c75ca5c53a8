"""备用码: ten one-time recovery codes for the day no bound factor is at hand (a lost phone).

Offered once a factor is bound; shown once when generated (重新生成 voids the old set); each is
accepted by the code field of any second step or verification, with or without its hyphen, and
works once (a conditional UPDATE). Only HMACs are stored. They are no factor of their own: they
never count as "bound", and unbinding the last factor voids them.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import crypto
from portal.db import db
from portal.models import Enrollment, Factor, LoginSession, RecoveryCode, User, utcnow
from portal.services import audit, step_up
from portal.services.client import Client
from portal.services.errors import NotAllowed
from portal.services.factors.base import FactorMethod

KEY = "recovery"
LABEL = _l("备用码")
COUNT = 10
LENGTH = 10
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: read off paper without doubt
DOWNLOADABLE = timedelta(minutes=10)  # the fresh set, for 下载, in the session that generated it


class Recovery(FactorMethod):
    """How the second step and the verification dialogs show "使用备用码" (not a row of its own)."""

    key = KEY
    label = LABEL
    login_hint = _l("输入一个未使用过的备用码(10 位字母和数字,如 abcde-23456)")
    dialog_hint = _l("输入一个未使用过的备用码")
    code_label = _l("备用码")
    code_inputmode = "text"


RECOVERY = Recovery()


def issue(session: LoginSession, user: User, client: Client | None) -> list[str]:
    """生成备用码 on the settings page: a bound factor and a fresh verification first (step-up)."""
    if not Factor.select().where(Factor.user == user).exists():
        raise NotAllowed(_("请先绑定一种二次验证方式,再生成备用码"))
    step_up.require(session, "recovery-codes")
    codes = generate(user, client)
    with db.atomic():
        Enrollment.delete().where((Enrollment.session == session) & (Enrollment.method == KEY)).execute()
        Enrollment.create(
            user=user,
            session=session,
            method=KEY,
            secret=crypto.encrypt(" ".join(codes)),
            expires_at=utcnow() + DOWNLOADABLE,
        )
    return codes


def fresh(session: LoginSession) -> list[str]:
    """The set this session generated a moment ago (for 下载), or [] once it is no longer fresh."""
    row = Enrollment.get_or_none(
        (Enrollment.session == session) & (Enrollment.method == KEY) & (Enrollment.expires_at > utcnow())
    )
    return crypto.decrypt(row.secret).split() if row else []


def generate(user: User, client: Client | None) -> list[str]:
    """A fresh set of codes (shown once, as xxxxx-xxxxx); the old set stops working in the same step."""
    codes = ["".join(secrets.choice(ALPHABET) for _ in range(LENGTH)) for _ in range(COUNT)]
    with db.atomic():
        void(user)
        RecoveryCode.insert_many([{"user": user, "code_hash": _hash(user, code)} for code in codes]).execute()
        audit.record("recovery_codes_generated", user=user, method=KEY, client=client)
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def normalise(raw: str | None) -> str | None:
    """The code without ASCII spaces and hyphens, lower case; None unless it has the shape of one."""
    code = (raw or "").replace(" ", "").replace("-", "").lower()
    return code if len(code) == LENGTH and all(ch in ALPHABET for ch in code) else None


def looks_like(raw: str | None) -> bool:
    return normalise(raw) is not None


def consume(user: User, raw: str | None) -> bool:
    """Spend one unused code of ``user``; False if it is wrong or was used already."""
    code = normalise(raw)
    if code is None:
        return False
    unused = (
        (RecoveryCode.user == user) & (RecoveryCode.code_hash == _hash(user, code)) & RecoveryCode.used_at.is_null()
    )
    return RecoveryCode.update(used_at=utcnow()).where(unused).execute() == 1


def remaining(user: User | int) -> int:
    return RecoveryCode.select().where((RecoveryCode.user == user) & RecoveryCode.used_at.is_null()).count()


def void(user: User) -> None:
    RecoveryCode.delete().where(RecoveryCode.user == user).execute()
    Enrollment.delete().where((Enrollment.user == user) & (Enrollment.method == KEY)).execute()


def _hash(user: User, code: str) -> str:
    return crypto.token_hash(f"recovery:{user.id}:{code}")
