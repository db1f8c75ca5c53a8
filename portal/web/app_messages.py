"""What the 邮箱安全 App's scripts say (static/app/*.js), in the page's language.

The App's JavaScript keeps its Chinese text as the key: ``t("已移除 {account}", {account: a})`` in
core.js looks the key up in the ``<script type="application/json" id="app-messages">`` block that
templates/app/index.html renders from ``catalog()`` (Chinese → this request's language), and fills the
``{name}`` placeholders itself. The service worker (no DOM) reads the same block from the shell it
caches. tests/views/test_app_messages.py checks that every ``t("…")`` of the scripts is listed here.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

MESSAGES = (
    # app.js: the accounts and their codes
    _l("(暂无帐号,请点击“+”选择“扫一扫”,扫描网页上的绑定二维码)"),
    _l("剩余时间"),
    _l("复制"),
    _l("移除"),
    _l("已复制验证码"),
    _l("无法复制,请手动输入验证码"),
    _l("已移除 {account}"),
    # app.js: 授权请求
    _l("{account} 已在网页上解绑,已从 App 中移除"),
    _l("(暂无)"),
    _l("帐号"),
    _l("地点"),
    _l("浏览器"),
    _l("系统"),
    _l("时间"),
    _l("确定授权"),
    _l("确定是否授权:登录"),
    _l("确定是否授权:解绑验证方式"),
    _l("确定是否授权:修改验证方式"),
    _l("确定是否授权:安全验证"),
    _l("确定是否授权:{purpose}"),
    _l("{seconds} 秒内有效"),
    _l("您的帐号正在进行操作,请选择网页上显示的数字,再点击“确定授权”;若非本人操作,请点击“不是本人操作”。"),
    _l("网页上显示的数字"),
    _l("取消授权"),
    _l("不是本人操作"),
    _l("已确认授权"),
    _l("已取消授权"),
    # app.js: 扫一扫
    _l("开发模拟器:把网页二维码的链接粘贴到下面"),
    _l("正在打开摄像头…"),
    _l("不是邮箱安全 App 的二维码"),
    _l("请将网页上的二维码放入框内"),
    _l("无法使用摄像头:请允许使用摄像头,或把二维码链接粘贴到下面"),
    # app.js: 确定绑定 (the device name is only a suggestion the user may edit)
    _l("手机"),
    _l("邮箱安全 App"),
    _l("正在绑定…"),
    _l("绑定成功:{account}"),
    # app.js: 扫码登录
    _l("App 中还没有帐号,请先扫描网页上的绑定二维码"),
    _l("该二维码不属于 App 中的帐号"),
    _l("扫码登录"),
    _l("已确认授权,请回到网页"),
    _l("确认授权并信任此设备"),
    _l("临时登录"),
    _l("取消"),
    # app.js: notifications and install
    _l("iPhone 需先把 App 添加到主屏幕才能接收通知;现在 App 打开时会自动检查授权请求。"),
    _l("此浏览器不支持通知:App 打开时会自动检查授权请求。"),
    _l("通知已关闭,可在浏览器设置中开启;App 打开时会自动检查授权请求。"),
    _l("开启通知后,登录邮箱时本机会收到授权提醒。"),
    _l("服务器未开启通知推送:App 打开时会自动检查授权请求。"),
    _l("通知已开启:登录邮箱时本机会收到授权提醒。"),
    _l("暂时无法开启通知({error}):App 打开时会自动检查授权请求。"),
    _l("在 Safari 中点击“分享”,选择“添加到主屏幕”,即可像普通 App 一样使用并接收通知。"),
    # core.js
    _l("网络不可用,请稍后再试"),
    _l("服务暂时不可用({status})"),
    # scanner.js
    _l("此浏览器不能使用摄像头"),
    # sw.js: the notification of a push
    _l("邮箱安全:有新的授权请求"),
    _l("请打开邮箱安全 App 确认"),
    _l("{who} 正在登录邮箱,请确认"),
    _l("{who} 正在解绑验证方式,请确认"),
    _l("{who} 正在修改验证方式,请确认"),
    _l("{who} 正在进行安全验证,请确认"),
    _l("{who} 正在操作,请确认"),
    _l("打开 App,选择网页上显示的数字以确定授权"),
)


def catalog() -> dict[str, str]:
    """{Chinese key: its text in this request's language} for the App's scripts."""
    return {message._args[0]: str(message) for message in MESSAGES}
