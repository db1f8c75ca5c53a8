"""邮箱安全 App: bound by scanning a QR with the App; logins approved by push (number matching), by
scanning the login QR, or by the App's 6-digit code. The device side lives in ``app_devices``."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from portal.models import Device
from portal.services.factors.phone import PhoneMethod


class App(PhoneMethod):
    key = "app"
    label = _l("邮箱安全 App")
    channels = ("push", "qr", "code")
    login_hint = _l("打开【邮箱安全 App】,点击“+”选择“二次验证”,找到本账号的 6 位验证码")
    dialog_hint = _l("打开【邮箱安全 App】输入验证码")
    scan_with = _l("【邮箱安全 App】")
    rebind_title = _l("修改邮箱安全 App:绑定新的设备")
    rebind_keeps = _l("新设备绑定成功前,原设备仍然有效")

    def on_removed(self, factor) -> None:
        Device.delete().where(Device.device_id == factor.external_id).execute()
