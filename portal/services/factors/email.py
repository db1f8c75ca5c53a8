"""备用邮箱: bind an address by a code mailed to it; later, codes mailed there are a second step.

Enabled by the admin (policy), and only where mail can be sent (mailer.available). Binding, 修改
and the codes for login, 解绑 and 修改 all go through mailed_codes (one live code per session).
"""

from __future__ import annotations

from dataclasses import dataclass

from portal import crypto
from portal.models import Factor, LoginSession, User
from portal.services import accounts, audit, mailed_codes, mailer, otp, throttle
from portal.services.accounts import mask
from portal.services.client import Client
from portal.services.errors import InvalidCode, InvalidInput, NotFound
from portal.services.factors import binding
from portal.services.factors.base import FactorMethod, Form

METHOD = "email"
WRONG_CODE = "验证码错误或已过期,请重新获取"


class Email(FactorMethod):
    key = METHOD
    label = "备用邮箱"
    login_hint = "查收备用邮箱中的邮件,输入其中的 6 位验证码"
    dialog_hint = "输入发送到备用邮箱的验证码"
    sends_code = True
    code_minutes = int(mailed_codes.CODE_TTL.total_seconds() // 60)

    def unavailable(self) -> str | None:
        return None if mailer.available() else "本站未配置发信服务器"

    def begin_bind(self, session, user, purpose, client, form=None) -> EmailEnrollment:
        code = mailed_codes.pending(session, "bind")
        address = (form or {}).get("address", "")
        return EmailEnrollment(purpose, mask(mailed_codes.address_of(code)) if code else "", address)

    def send_bind_code(self, session, user, purpose, form: Form, client) -> EmailEnrollment:
        """发送验证码 to the address being bound."""
        address = validate(form.get("address", ""), user)
        mailed_codes.send(session, user, "bind", address, client)
        return EmailEnrollment(purpose, mask(address), address)

    def bind(self, session, user, purpose, form: Form, client) -> Factor:
        return confirm(session, user, purpose, form.get("code"), client)

    def check(self, factor, raw, session) -> None:
        if session is None or mailed_codes.consume(session, "verify", otp.parse_code(raw)) is None:
            raise InvalidCode(WRONG_CODE)

    def send_code(self, session, user, client) -> str:
        return send_verify_code(session, user, client)

    def challenge_context(self, session, user) -> dict:
        return {"sent_to": sent_to(session, user), "address": bound_to(user)}


@dataclass
class EmailEnrollment:
    """The 备用邮箱 bind dialog: before and after the code was mailed."""

    purpose: str  # bind | rebind (the second half of 修改)
    sent_to: str  # where the live code went (masked); "" before sending
    address: str = ""  # what the user typed, shown again after an error


def confirm(session: LoginSession, user: User, purpose: str, raw_code: str | None, client: Client) -> Factor:
    """The mailed code proves the address: store it as the factor (修改 replaces the old one only now)."""
    with throttle.begin("otp", user.account, client.ip) as attempt:
        try:  # a malformed code is a failed attempt too, audited like a wrong one
            code = mailed_codes.consume(session, "bind", otp.parse_code(raw_code))
            if code is None:
                raise InvalidCode(WRONG_CODE)
        except InvalidCode as exc:
            audit.record("factor_bind", user=user, method=METHOD, outcome="fail", client=client, detail=exc.code)
            raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
        address = mailed_codes.address_of(code)
        factor = binding.commit_binding(
            session,
            user,
            METHOD,
            client,
            replaces=purpose == "rebind",
            label=mask(address),
            secret=crypto.encrypt(address),
        )
        attempt.succeeded()
    return factor


def send_verify_code(session: LoginSession, user: User, client: Client) -> str:
    """Mail a code to the bound address (login, 解绑, 修改); returns the masked address."""
    address = _bound_address(user)
    mailed_codes.send(session, user, "verify", address, client)
    return mask(address)


def sent_to(session: LoginSession, user: User) -> str:
    """Where this session's live verification code went (masked), or "" if none is pending."""
    return mask(_bound_address(user)) if mailed_codes.pending(session, "verify") else ""


def bound_to(user: User) -> str:
    """The bound address, masked (what the second step shows before sending)."""
    return mask(_bound_address(user))


def validate(address: str, user: User) -> str:
    address = accounts.normalize(address or "")
    if len(address) > 254 or not accounts.ACCOUNT_RE.match(address):
        raise InvalidInput("请输入正确的邮箱地址")
    if address == user.account:
        raise InvalidInput("备用邮箱不能是本邮箱账号,请填写您的其他邮箱")
    return address


def _bound_address(user: User) -> str:
    factor = Factor.of(user, METHOD)
    if factor is None:
        raise NotFound("备用邮箱未绑定")
    return crypto.decrypt(factor.secret)
