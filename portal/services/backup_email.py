"""备用邮箱: bind an address by a code mailed to it; later, codes mailed there are a second step.

Enabled by the admin (policy), and only where mail can be sent (mailer.available). Binding, 修改
and the codes for login, 解绑 and 修改 all go through mailed_codes (one live code per session).
"""

from __future__ import annotations

from dataclasses import dataclass

from portal import crypto
from portal.models import Factor, LoginSession, User
from portal.services import accounts, audit, factors, mailed_codes, otp, throttle
from portal.services.accounts import mask
from portal.services.client import Client
from portal.services.errors import InvalidCode, InvalidInput, NotFound

METHOD = "email"
WRONG_CODE = "验证码错误或已过期,请重新获取"


@dataclass
class EmailEnrollment:
    """The 备用邮箱 bind dialog: before and after the code was mailed."""

    purpose: str  # bind | rebind (the second half of 修改)
    sent_to: str  # where the live code went (masked); "" before sending


def begin(session: LoginSession, user: User) -> EmailEnrollment:
    """Open (or reopen) the bind dialog: 绑定, or 修改 after a fresh verification."""
    purpose = factors.binding_purpose(session, user, METHOD)
    code = mailed_codes.pending(session, "bind")
    return EmailEnrollment(purpose, mask(mailed_codes.address_of(code)) if code else "")


def send_bind_code(session: LoginSession, user: User, address: str, client: Client) -> EmailEnrollment:
    """发送验证码 to the address being bound."""
    purpose = begin(session, user).purpose
    address = validate(address, user)
    mailed_codes.send(session, user, "bind", address, client)
    return EmailEnrollment(purpose, mask(address))


def confirm(session: LoginSession, user: User, raw_code: str | None, client: Client) -> Factor:
    """The mailed code proves the address: store it as the factor (修改 replaces the old one only now)."""
    purpose = begin(session, user).purpose
    with throttle.begin("otp", user.account, client.ip) as attempt:
        try:  # a malformed code is a failed attempt too, audited like a wrong one
            code = mailed_codes.consume(session, "bind", otp.parse_code(raw_code))
            if code is None:
                raise InvalidCode(WRONG_CODE)
        except InvalidCode as exc:
            audit.record("factor_bind", user=user, method=METHOD, outcome="fail", client=client, detail=exc.code)
            raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
        address = mailed_codes.address_of(code)
        factor = factors.commit_binding(
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


def mailbox(session: LoginSession, user: User) -> dict[str, str]:
    """What the pages show: ``email_to``, the bound address, and ``email_sent``, where this session's
    live code went ("" before sending); both masked."""
    return {"email_to": bound_to(user), "email_sent": sent_to(session, user)}


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
    factor = Factor.get_or_none((Factor.user == user) & (Factor.method == METHOD))
    if factor is None:
        raise NotFound("备用邮箱未绑定")
    return crypto.decrypt(factor.secret)
