"""备用邮箱: bind an address by a code mailed to it; later, codes mailed there are a second step.

Enabled by the admin (policy), and only where mail can be sent (mailer.available).
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from portal.models import User
from portal.services import accounts, mailer, sent_codes
from portal.services.accounts import mask
from portal.services.client import Client
from portal.services.errors import InvalidInput
from portal.services.factors.sent_code import SentCodeMethod

METHOD = "email"
PURPOSES = {"bind": "绑定备用邮箱", "verify": "二次验证"}


def _deliver(address: str, code: str, purpose: str, client: Client) -> None:
    org = current_app.config["ORG_NAME"]
    body = (
        f"您的验证码是 {code},{CHANNEL.minutes} 分钟内有效,用于{PURPOSES[purpose]}。\n\n"
        f"请求来自 IP {client.ip or '未知'}。如非本人操作,请勿将验证码告诉任何人,并尽快修改邮箱密码。\n\n"
        f"{org}\n"
    )
    mailer.send(address, f"【{org}】二次验证验证码", body)


CHANNEL = sent_codes.Channel(METHOD, timedelta(minutes=10), "发送验证码邮件", _deliver, mask, "mail_code_sent")


class Email(SentCodeMethod):
    key = METHOD
    label = "备用邮箱"
    login_hint = "查收备用邮箱中的邮件,输入其中的 6 位验证码"
    dialog_hint = "输入发送到备用邮箱的验证码"
    channel = CHANNEL
    not_bound = "备用邮箱未绑定"
    address_label = "备用邮箱"
    bind_title = "备用邮箱绑定"
    rebind_title = "修改备用邮箱:绑定新的邮箱"
    bind_intro = "请填写您的其他常用邮箱(不能是本邮箱账号),我们会向它发送 6 位验证码。"
    rebind_keeps = "新邮箱绑定成功前,原备用邮箱仍然有效。"
    address_field, address_type, code_source = "备用邮箱", "email", "邮件"

    def unavailable(self) -> str | None:
        return None if mailer.available() else "本站未配置发信服务器"

    def validate(self, address: str, user: User) -> str:
        address = accounts.normalize(address or "")
        if len(address) > 254 or not accounts.ACCOUNT_RE.match(address):
            raise InvalidInput("请输入正确的邮箱地址")
        if address == user.account:
            raise InvalidInput("备用邮箱不能是本邮箱账号,请填写您的其他邮箱")
        return address
