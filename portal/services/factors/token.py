"""动态口令: a hardware OATH token (HOTP or TOTP) the admin imported (``hardware_tokens``); the user binds
it by its serial number and the code it shows. Offered when the policy enables ``token`` or the admin
assigned the user a token. An HOTP token long unused is resynchronised by two consecutive codes."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.db import db
from portal.models import HardwareToken
from portal.services import audit, hardware_tokens, throttle
from portal.services.errors import InvalidCode
from portal.services.factors import binding
from portal.services.factors.base import FactorMethod, Form

METHOD = "token"


@dataclass
class TokenEnrollment:
    purpose: str
    serial: str = ""  # what the user typed, shown again after an error


class Token(FactorMethod):
    key = METHOD
    label = _l("动态口令")
    login_hint = _l("按下动态口令令牌的按键(或查看令牌屏幕),输入显示的数字")
    dialog_hint = _l("输入动态口令令牌显示的数字")
    code_label = _l("动态口令")

    def assigned_to(self, user) -> bool:
        return HardwareToken.select().where(HardwareToken.user == user).exists()

    def begin_bind(self, session, user, purpose, client, form=None) -> TokenEnrollment:
        return TokenEnrollment(purpose, (form or {}).get("serial", "").strip()[:64])

    def bind(self, session, user, purpose, form: Form, client):
        serial, code, next_code = form.get("serial", "").strip(), form.get("code"), form.get("next_code")
        with throttle.begin("otp", user.account, client.ip, user_agent=client.user_agent) as attempt:
            try:
                with db.atomic():  # the token is claimed for this user only with the factor
                    fields = hardware_tokens.bind_check(user, serial, code, next_code=next_code or None)
                    factor = binding.commit_binding(
                        session, user, METHOD, client, replaces=purpose == "rebind", **fields
                    )
            except InvalidCode as exc:
                audit.record("factor_bind", user=user, method=METHOD, outcome="fail", client=client, detail=exc.code)
                raise InvalidCode(exc.message + attempt.warning(), code=exc.code) from None
            attempt.succeeded()
        return factor

    def check(self, factor, raw, session) -> None:
        token = HardwareToken.by_serial(factor.external_id)
        if token is None or token.user_id != factor.user_id:  # unassigned meanwhile
            raise InvalidCode(_("该动态口令已停用,请联系管理员"))
        hardware_tokens.check_code(token, raw)

    def describe(self, factor) -> str:
        return _("序列号 %(serial)s", serial=factor.label)
