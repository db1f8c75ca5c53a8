"""短信: bind a mobile number by a code texted to it; later, codes texted there are a second step.

Enabled by the admin (policy ``sms``), and only where a provider is configured (``sms_gateway``).
Numbers are stored in E.164 (encrypted) and shown masked (138****8000). Besides the per-account and
per-IP caps of every sent code, each number gets at most 1 text a minute, 5 an hour and 10 a day.
A provider's refusal is 短信发送失败 and changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import crypto
from portal.models import User
from portal.services import phone_numbers, sent_codes, sms_gateway, throttle
from portal.services.client import Client
from portal.services.factors.sent_code import SentCodeMethod

METHOD = "sms"
PER_NUMBER = ((60, 1), (3600, 5), (86400, 10))  # (seconds, texts)


def _deliver(phone: str, code: str, purpose: str, client: Client) -> None:
    # The number's own caps come first: its key is an HMAC, so counters hold no phone numbers.
    throttle.cap("smsnumber", crypto.token_hash(f"sms:{phone}"), PER_NUMBER, _("向该号码发送短信"))
    sms_gateway.send_code(phone, purpose, code)


CHANNEL = sent_codes.Channel(
    METHOD, timedelta(minutes=5), _l("发送短信验证码"), _deliver, phone_numbers.mask, "sms_code_sent"
)


class Sms(SentCodeMethod):
    key = METHOD
    label = _l("短信")
    login_hint = _l("输入短信中的 6 位验证码")
    dialog_hint = _l("输入发送到手机的短信验证码")
    channel = CHANNEL
    not_bound = _l("短信验证未绑定")
    address_label = _l("手机")
    bind_title = _l("短信验证绑定")
    rebind_title = _l("修改短信验证:绑定新的手机号")
    bind_intro = _l("请填写您本人的手机号码(如 138 0013 8000),我们会向它发送 6 位短信验证码。")
    rebind_keeps = _l("新号码绑定成功前,原号码仍然有效。")
    address_field, address_type, code_source = _l("手机号码"), "tel", _l("短信")

    def unavailable(self) -> str | None:
        return None if sms_gateway.configured() else _("本站未配置短信服务")

    def validate(self, address: str, user: User) -> str:
        return phone_numbers.normalise(address)
