"""微信: bound by scanning a QR with WeChat, which opens the 邮箱安全助手 mini-program; logins approved
there (确认授权并信任此设备 / 临时登录) or by its 6-digit code. The mini-program side is ``services.wechat``."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import ApiToken, WeChatUser
from portal.services.factors.phone import PhoneMethod


class WeChat(PhoneMethod):
    key = "wechat"
    label = _l("微信")
    login_hint = _l("打开微信搜索“邮箱安全助手”小程序,找到本账号的 6 位验证码")
    dialog_hint = _l("打开【微信-邮箱安全助手】输入验证码")
    scan_with = _l("【微信】")
    qr_note = _l(
        "在小程序中选择“确认授权并信任此设备”后,以后在本浏览器登录将不再需要二次验证;选择“临时登录”则下次仍需验证。"
    )
    rebind_title = _l("修改微信:绑定新的微信")
    rebind_keeps = _l("确认前原绑定的微信仍然有效")
    STORED_PREFIX = "微信用户 "  # labels stored before the English pages named the user in the label itself

    def describe(self, factor) -> str:
        """The bound WeChat user by their masked openid (the label stores only that)."""
        return _("微信用户 %(user)s", user=factor.label.removeprefix(self.STORED_PREFIX))

    def on_removed(self, factor) -> None:
        holder = WeChatUser.of_binding(factor.external_id)
        if holder is not None:  # the mini-program signs in again silently
            ApiToken.delete().where(ApiToken.wechat_user == holder).execute()
