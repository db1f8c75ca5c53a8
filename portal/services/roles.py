"""The 网络信息化中心's console roles and what each may do on /admin.

``admin`` may do everything; ``helpdesk`` finds users and helps them (unlock, reset, 临时访问码, …)
but cannot change policy or roles; ``auditor`` reads reports and the audit log and changes nothing.
Any role makes an account staff (``User.is_staff``): forced to bind, second step at every login.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from portal.models import User

ADMIN, HELPDESK, AUDITOR = "admin", "helpdesk", "auditor"
LABELS = {ADMIN: _l("管理员"), HELPDESK: _l("服务台"), AUDITOR: _l("审计员")}
ROLES = tuple(LABELS)

# Permission → the roles that have it. Every /admin view names exactly one (portal.web.admin).
REPORTS, AUDIT, USERS, SUPPORT, POLICY, ROLE_CHANGE = "reports", "audit", "users", "support", "policy", "roles"
CONSOLE = "console"
PERMISSIONS = {
    CONSOLE: {ADMIN, HELPDESK, AUDITOR},  # /admin itself: sends each role to its first page
    REPORTS: {ADMIN, AUDITOR},  # 统计报表 and their CSV
    AUDIT: {ADMIN, AUDITOR},  # 审计日志 and its export
    USERS: {ADMIN, HELPDESK},  # 用户支持: find an account, see its page
    SUPPORT: {ADMIN, HELPDESK},  # act on an account: unlock, reset, 临时访问码, …
    POLICY: {ADMIN},  # 策略
    ROLE_CHANGE: {ADMIN},  # give or take a console role
}


def allows(user: User | None, permission: str) -> bool:
    """Whether ``user``'s role carries ``permission`` (an unknown permission: nobody)."""
    return bool(user and user.role) and user.role in PERMISSIONS.get(permission, ())


def label(role: str) -> str:
    return str(LABELS[role]) if role in LABELS else ""
