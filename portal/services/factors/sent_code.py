"""Methods whose codes are sent on request to an address the user proved at binding: 备用邮箱 (mail)
and 短信 (text). Binding sends a code to the typed address; the second step, 解绑 and 修改 send one to
the bound address (发送验证码). Codes live in ``sent_codes`` (one live code per session and purpose)."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from portal import crypto
from portal.models import Factor, LoginSession, User
from portal.services import audit, otp, sent_codes, throttle
from portal.services.client import Client
from portal.services.errors import InvalidCode, NotFound
from portal.services.factors import binding
from portal.services.factors.base import FactorMethod, Form

WRONG_CODE = _l("验证码错误或已过期,请重新获取")


@dataclass
class SentCodeEnrollment:
    """The bind dialog: before and after the code was sent."""

    purpose: str  # bind | rebind (the second half of 修改)
    sent_to: str  # where the live code went (masked); "" before sending
    address: str = ""  # what the user typed, shown again after an error


class SentCodeMethod(FactorMethod):
    sends_code = True
    channel: sent_codes.Channel
    not_bound = _l("该验证方式未绑定")
    address_label = ""  # where codes go: 备用邮箱, 手机
    bind_partial = "security/bind/_sent_code.html"
    # The bind dialog's wording and its address field (type: email | tel, also its autocomplete).
    bind_title = rebind_title = bind_intro = rebind_keeps = address_field = address_type = code_source = ""

    @property
    def code_minutes(self) -> int:
        return self.channel.minutes

    def validate(self, address: str, user: User) -> str:
        """The typed address in its stored form; InvalidInput if it is no address of this kind."""
        raise NotImplementedError

    def begin_bind(self, session, user, purpose, client, form=None) -> SentCodeEnrollment:
        code = sent_codes.pending(session, self.channel, "bind")
        sent_to = self.channel.mask(sent_codes.address_of(code)) if code else ""
        return SentCodeEnrollment(purpose, sent_to, (form or {}).get("address", ""))

    def send_bind_code(self, session, user, purpose, form: Form, client) -> SentCodeEnrollment:
        address = self.validate(form.get("address", ""), user)
        sent_codes.send(session, user, self.channel, "bind", address, client)
        return SentCodeEnrollment(purpose, self.channel.mask(address), form.get("address", ""))

    def bind(self, session, user, purpose, form: Form, client) -> Factor:
        """The sent code proves the address: store it as the factor (修改 replaces the old one only now)."""
        with throttle.begin("otp", user.account, client.ip, user_agent=client.user_agent) as attempt:
            try:  # a malformed code is a failed attempt too, audited like a wrong one
                code = sent_codes.consume(session, self.channel, "bind", otp.parse_code(form.get("code")))
                if code is None:
                    raise InvalidCode(str(WRONG_CODE))
            except InvalidCode as exc:
                audit.record("factor_bind", user=user, method=self.key, outcome="fail", client=client, detail=exc.code)
                raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
            address = sent_codes.address_of(code)
            factor = binding.commit_binding(
                session,
                user,
                self.key,
                client,
                replaces=purpose == "rebind",
                label=self.channel.mask(address),
                secret=crypto.encrypt(address),
            )
            attempt.succeeded()
        return factor

    def check(self, factor, raw, session) -> None:
        if session is None or sent_codes.consume(session, self.channel, "verify", otp.parse_code(raw)) is None:
            raise InvalidCode(str(WRONG_CODE))

    def send_code(self, session: LoginSession, user: User, client: Client) -> str:
        """Send a code to the bound address (login, 解绑, 修改); returns the masked address."""
        address = self.bound_address(user)
        sent_codes.send(session, user, self.channel, "verify", address, client)
        return self.channel.mask(address)

    def challenge_context(self, session, user) -> dict:
        address = self.channel.mask(self.bound_address(user))
        sent = sent_codes.pending(session, self.channel, "verify") is not None
        return {"address": address, "sent_to": address if sent else ""}

    def bound_address(self, user: User) -> str:
        factor = Factor.of(user, self.key)
        if factor is None:
            raise NotFound(str(self.not_bound))
        return crypto.decrypt(factor.secret)
