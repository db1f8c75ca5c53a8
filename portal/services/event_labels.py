"""How the console names audit events, outcomes and methods (the audit log stores stable codes).

``event(code)`` covers every code the portal writes, including those built from a ticket's purpose
(``app_login_approved``, ``wechat_bind_confirmed``, ``unbind_verify``); an unknown code (written by a
newer release) is shown as it is. ``EVENTS`` lists the codes an audit search offers.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

# Fixed codes → label.
_EVENTS = {
    "login_password": _l("登录:密码验证"),
    "login_verify": _l("登录:二次验证"),
    "login_complete": _l("登录成功"),
    "locked_out": _l("锁定"),
    "rate_limited": _l("请求过于频繁"),
    "logout": _l("退出登录"),
    "mail_login": _l("邮件客户端登录"),
    "forward_auth": _l("应用访问(转发认证)"),
    "sso_authorized": _l("单点登录到应用"),
    "directory_unavailable": _l("目录服务不可用"),
    "sign_in_new_device": _l("新设备登录"),
    "sign_in_new_place": _l("异地登录"),
    "factor_bind": _l("绑定验证方式"),
    "factor_bound": _l("绑定验证方式"),
    "factor_changed": _l("修改验证方式"),
    "factor_unbound": _l("解绑验证方式"),
    "default_method_set": _l("设置默认验证方式"),
    "security_key_added": _l("添加安全密钥"),
    "security_key_removed": _l("删除安全密钥"),
    "recovery_codes_generated": _l("生成备用码"),
    "recovery_code_used": _l("使用备用码"),
    "trusted_device_added": _l("新增信任设备"),
    "trusted_device_revoked": _l("移除信任设备"),
    "trusted_devices_revoked": _l("清除全部信任设备"),
    "app_password_created": _l("生成客户端专用密码"),
    "app_password_deleted": _l("删除客户端专用密码"),
    "app_passwords_cleared": _l("清除全部客户端专用密码"),
    "password_change": _l("修改密码"),
    "password_changed": _l("密码已修改"),
    "session_ended_by_user": _l("用户退出一个会话"),
    "other_sessions_ended": _l("退出其他所有设备"),
    "user_sessions_ended": _l("管理员退出所有会话"),
    "account_secured": _l("保护帐号"),
    "2fa_reset": _l("管理员重置二次验证"),
    "user_created": _l("创建账号"),
    "user_provisioned": _l("目录账号首次登录"),
    "users_imported": _l("批量导入账号"),
    "user_unlocked": _l("解除锁定"),
    "user_disabled": _l("停用账号"),
    "user_enabled": _l("启用账号"),
    "user_policy_changed": _l("修改用户策略"),
    "user_role_changed": _l("修改角色"),
    "policy_changed": _l("修改策略"),
    "binding_snoozed": _l("稍后绑定"),
    "token_import": _l("导入动态口令"),
    "token_assigned": _l("分配动态口令"),
    "token_unassigned": _l("收回动态口令"),
    "audit_exported": _l("导出审计日志"),
    "temporary_code_issued": _l("临时访问码已签发"),
    "temporary_code_used": _l("临时访问码已使用"),
    "temporary_code_revoked": _l("作废临时访问码"),
}
# Codes built from a ticket's or a verification's purpose: (prefix, suffix) → label with %(purpose)s.
_PURPOSES = {
    "bind": _l("绑定"),
    "login": _l("登录"),
    "unbind": _l("解绑"),
    "rebind": _l("修改"),
    "change": _l("修改"),
    "verify": _l("安全验证"),
}
TICKETS = ("bind", "login", "unbind", "rebind", "verify")  # tickets.PURPOSES
_PATTERNS = {
    ("app_", "_approved"): (_l("App 确认%(purpose)s"), TICKETS),
    ("app_", "_denied"): (_l("App 拒绝%(purpose)s"), TICKETS),
    ("wechat_", "_confirmed"): (_l("微信确认%(purpose)s"), ("bind", "unbind", "rebind", "verify")),
    ("wechat_", "_approved"): (_l("微信确认%(purpose)s"), ("login",)),
    ("wechat_", "_denied"): (_l("微信拒绝%(purpose)s"), TICKETS),
    ("", "_verify"): (_l("%(purpose)s:验证码"), ("login", "unbind", "change", "verify")),
}
_OUTCOMES = {
    "ok": _l("成功"),
    "fail": _l("失败"),
    "locked": _l("锁定"),
    "limited": _l("受限"),
    "denied": _l("拒绝"),
    "not_me": _l("不是本人操作"),
    "expired": _l("已过期"),
    "error": _l("系统错误"),
}


def event(code: str) -> str:
    """The label of an audit event code; the code itself if this release does not know it."""
    if code in _EVENTS:
        return str(_EVENTS[code])
    for (prefix, suffix), (label, purposes) in _PATTERNS.items():
        purpose = code.removeprefix(prefix).removesuffix(suffix)
        if code.startswith(prefix) and code.endswith(suffix) and purpose in purposes:
            return str(label % {"purpose": _PURPOSES[purpose]})
    return code


def outcome(code: str) -> str:
    return str(_OUTCOMES[code]) if code in _OUTCOMES else code


def method(code: str) -> str:
    """A method key as its label (备用码 and 临时访问码 included); "" stays empty."""
    from portal.services import temporary_access  # these log events themselves: imported when asked
    from portal.services.factors import METHODS, recovery

    known = {**METHODS, recovery.KEY: recovery.RECOVERY, temporary_access.KEY: temporary_access.TEMPORARY}
    found = known.get(code)
    return str(found.label) if found else code


def events() -> list[tuple[str, str]]:
    """(code, label) of every event an audit search may filter by, fixed and built, by label."""
    codes = set(_EVENTS)
    for (prefix, suffix), (_label, purposes) in _PATTERNS.items():
        codes |= {f"{prefix}{purpose}{suffix}" for purpose in purposes}
    return sorted(((code, event(code)) for code in codes), key=lambda pair: pair[1])


def outcomes() -> list[tuple[str, str]]:
    return [(code, str(label)) for code, label in _OUTCOMES.items()]
