"""备用邮箱: bind an address by a code mailed to it; later, codes mailed there are a second step.

Enabled by the admin (policy), and only where mail can be sent (mailer.available).
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import User
from portal.services import accounts, mailer, sent_codes
from portal.services.accounts import mask
from portal.services.client import Client
from portal.services.errors import InvalidInput
from portal.services.factors.sent_code import SentCodeMethod

METHOD = "email"


def _deliver(address: str, code: str, purpose: str, client: Client) -> None:
    """The mail with the code (sent_codes.send writes it in the account's language)."""
    org = current_app.config["ORG_NAME"]
    minutes = CHANNEL.minutes
    if purpose == "bind":
        first = _("您的验证码是 %(code)s,%(minutes)s 分钟内有效,用于绑定备用邮箱。", code=code, minutes=minutes)
    else:
        first = _("您的验证码是 %(code)s,%(minutes)s 分钟内有效,用于二次验证。", code=code, minutes=minutes)
    warning = _(
        "请求来自 IP %(ip)s。如非本人操作,请勿将验证码告诉任何人,并尽快修改邮箱密码。", ip=client.ip or _("未知")
    )
    mailer.send(address, _("【%(org)s】二次验证验证码", org=org), f"{first}\n\n{warning}\n\n{org}\n")


CHANNEL = sent_codes.Channel(METHOD, timedelta(minutes=10), _l("发送验证码邮件"), _deliver, mask, "mail_code_sent")


class Email(SentCodeMethod):
    key = METHOD
    label = _l("备用邮箱")
    login_hint = _l("查收备用邮箱中的邮件,输入其中的 6 位验证码")
    dialog_hint = _l("输入发送到备用邮箱的验证码")
    channel = CHANNEL
    not_bound = _l("备用邮箱未绑定")
    address_label = _l("备用邮箱")
    bind_title = _l("备用邮箱绑定")
    rebind_title = _l("修改备用邮箱:绑定新的邮箱")
    bind_intro = _l("请填写您的其他常用邮箱(不能是本邮箱账号),我们会向它发送 6 位验证码。")
    rebind_keeps = _l("新邮箱绑定成功前,原备用邮箱仍然有效。")
    address_field, address_type, code_source = _l("备用邮箱"), "email", _l("邮件")

    def unavailable(self) -> str | None:
        return None if mailer.available() else _("本站未配置发信服务器")

    def validate(self, address: str, user: User) -> str:
        address = accounts.normalize(address or "")
        if len(address) > 254 or not accounts.ACCOUNT_RE.match(address):
            raise InvalidInput(_("请输入正确的邮箱地址"))
        if address == user.account:
            raise InvalidInput(_("备用邮箱不能是本邮箱账号,请填写您的其他邮箱"))
        return address
