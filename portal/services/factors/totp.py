"""第三方 OTP: any RFC 6238 authenticator App, bound by scanning an otpauth:// QR and one code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import crypto
from portal.db import db
from portal.models import Enrollment, Factor, LoginSession, User, utcnow
from portal.services import audit, otp, throttle
from portal.services.client import Client
from portal.services.errors import Expired, InvalidCode
from portal.services.factors import binding
from portal.services.factors.base import CODE_REUSED, FactorMethod, Form

ENROLLMENT_TTL = timedelta(minutes=10)


@dataclass
class TotpEnrollment:
    id: int
    secret: str
    uri: str
    purpose: str

    @property
    def grouped(self) -> str:
        return otp.grouped(self.secret)


class Totp(FactorMethod):
    key = "totp"
    label = _l("第三方 OTP")
    login_hint = _l("打开您的身份验证器 App(如 Microsoft Authenticator),输入本账号的 6 位验证码")
    dialog_hint = _l("打开您的身份验证器 App 输入验证码")

    def begin_bind(self, session, user, purpose, client, form=None) -> TotpEnrollment | None:
        if form is not None:  # again after a refused code: the same secret, or None once it expired
            return pending(session, binding.row_id(form.get("enrollment", "")))
        return begin(session, user, purpose)

    def bind(self, session, user, purpose, form: Form, client):
        return confirm(session, user, binding.row_id(form.get("enrollment", "")), form.get("code"), client)

    def check(self, factor, raw, session) -> None:
        check_step(factor, raw)


def check_step(factor: Factor, raw: str | None) -> None:
    """A time-based code of ``factor`` (±1 step), each step usable once (also 邮箱安全 App, 微信)."""
    code = otp.parse_code(raw)
    step = otp.matching_step(crypto.decrypt(factor.secret), code)
    if step is None:
        raise InvalidCode(_("验证码错误,请重新输入"))
    if not factor.claim_step(step):
        raise InvalidCode(_("该验证码已使用,请等待下一个验证码"), code=CODE_REUSED)


def begin(session: LoginSession, user: User, purpose: str) -> TotpEnrollment:
    """A fresh secret, kept pending until a code confirms it."""
    secret = otp.new_secret()
    with db.atomic():
        Enrollment.delete().where((Enrollment.session == session) & (Enrollment.method == Totp.key)).execute()
        row = Enrollment.create(
            user=user,
            session=session,
            method=Totp.key,
            purpose=purpose,
            secret=crypto.encrypt(secret),
            expires_at=utcnow() + ENROLLMENT_TTL,
        )
    return TotpEnrollment(row.id, secret, otp.provisioning_uri(secret, user.account, _issuer()), purpose)


def confirm(session: LoginSession, user: User, enrollment_id: int, raw_code: str | None, client: Client) -> Factor:
    """Finish binding: the code must match the pending secret; 修改 replaces the old factor only now."""
    enrollment = Enrollment.get_or_none(
        (Enrollment.id == enrollment_id) & (Enrollment.session == session) & (Enrollment.method == Totp.key)
    )
    if enrollment is None or enrollment.expires_at <= utcnow():
        raise Expired(_("绑定已过期,请重新开始绑定"))
    with throttle.begin("otp", user.account, client.ip, user_agent=client.user_agent) as attempt:
        try:  # a malformed code is a failed attempt too, audited like a wrong one
            step = otp.matching_step(crypto.decrypt(enrollment.secret), otp.parse_code(raw_code))
            if step is None:
                raise InvalidCode(_("验证码错误,请确认 App 中显示的是本账号的验证码"))
        except InvalidCode as exc:
            audit.record("factor_bind", user=user, method=Totp.key, outcome="fail", client=client, detail=exc.code)
            raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
        with db.atomic():
            claimed = Enrollment.delete().where((Enrollment.id == enrollment.id) & (Enrollment.expires_at > utcnow()))
            if claimed.execute() != 1:
                raise Expired(_("绑定已完成或已过期"))
            factor = binding.commit_binding(
                session,
                user,
                Totp.key,
                client,
                replaces=enrollment.purpose == "rebind",
                secret=enrollment.secret,
                last_used_step=step,
                last_used_at=utcnow(),
            )
        attempt.succeeded()
    return factor


def pending(session: LoginSession, enrollment_id: int) -> TotpEnrollment | None:
    """A live enrollment of this session, to show its QR again after a wrong code."""
    row = Enrollment.get_or_none(
        (Enrollment.id == enrollment_id)
        & (Enrollment.session == session)
        & (Enrollment.method == Totp.key)
        & (Enrollment.expires_at > utcnow())
    )
    if row is None:
        return None
    secret = crypto.decrypt(row.secret)
    return TotpEnrollment(row.id, secret, otp.provisioning_uri(secret, row.user.account, _issuer()), row.purpose)


def _issuer() -> str:
    return str(current_app.config["ORG_NAME"])
