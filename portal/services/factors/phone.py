"""Methods approved on a phone (邮箱安全 App, 微信): bound by scanning a QR the phone confirms.

Their codes are time-based like 第三方 OTP's; the phone holds the secret it was given at binding.
"""

from __future__ import annotations

from portal.services import tickets
from portal.services.factors import totp
from portal.services.factors.base import FactorMethod
from portal.services.tickets import NewTicket


class PhoneMethod(FactorMethod):
    self_service = True
    channels = ("qr", "code")
    scan_with = ""  # what the user opens to scan: 【邮箱安全 App】, 【微信】
    bind_steps = ""  # what happens on the phone after scanning

    def begin_bind(self, session, user, purpose, client, form=None) -> NewTicket:
        return tickets.create(session, user, self.key, "bind", client, replaces=purpose == "rebind")

    def check(self, factor, raw, session) -> None:
        totp.check_step(factor, raw)
