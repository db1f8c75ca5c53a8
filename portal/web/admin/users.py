"""用户支持 (/admin/users): find an account by the start of its address or name, see it, help its owner.

Every action is a small form on the account's panel with a required reason (工单号 …); the answer is the
panel again (#support) with a notice, or with the error and its 4xx status. Acting needs roles.SUPPORT,
giving a console role roles.ROLE_CHANGE (admins only).
"""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _

from portal.services import accounts, event_labels, roles
from portal.services import user_support as support
from portal.services.errors import DomainError, InvalidInput
from portal.web.admin import bp, requires
from portal.web.render import page_or_fragment

USER_TEMPLATE = "admin/user.html"


@bp.get("/users")
@requires(roles.USERS)
def user_support():
    """用户支持: ``q`` searches by the start of an address or name; ``account`` opens one account."""
    query = request.args.get("q", "").strip()
    if query and not request.args.get("account"):
        matches = support.find_accounts(query)
        if len(matches) != 1:
            return page_or_fragment(USER_TEMPLATE, "support", query=query, matches=matches, summary=None)
        return _support(matches[0].account, query=query)
    return _support(request.args.get("account", ""))


@bp.post("/users/unlock")
@requires(roles.SUPPORT)
def unlock():
    return _act(lambda account, reason: accounts.unlock(account, g.user, g.client, reason), _("已解除锁定"))


@bp.post("/users/reset-2fa")
@requires(roles.SUPPORT)
def reset_2fa():
    return _act(
        lambda account, reason: accounts.reset_2fa(account, reason, by=g.user, client=g.client),
        _("已重置二次验证:该用户需重新绑定,其登录会话和信任设备已失效"),
    )


@bp.post("/users/disable")
@requires(roles.SUPPORT)
def disable():
    return _act(lambda account, reason: accounts.set_disabled(account, True, g.user, g.client, reason), _("账号已停用"))


@bp.post("/users/enable")
@requires(roles.SUPPORT)
def enable():
    enabled = _("账号已启用")
    return _act(lambda account, reason: accounts.set_disabled(account, False, g.user, g.client, reason), enabled)


@bp.post("/users/end-sessions")
@requires(roles.SUPPORT)
def end_sessions():
    def action(account: str, reason: str) -> str:
        keep = g.login if accounts.normalize(account) == g.user.account else None  # the admin's own stays
        count = support.end_sessions(account, reason, by=g.user, client=g.client, keep=keep)
        return _("已退出 %(count)s 个登录会话,该用户需重新登录", count=count)

    return _act(action)


@bp.post("/users/trusted-devices/remove")
@requires(roles.SUPPORT)
def remove_trusted_devices():
    raw = request.form.get("device", "").strip()

    def action(account: str, reason: str) -> str:
        if raw in ("", "all"):
            count = support.remove_trusted_devices(account, reason, by=g.user, client=g.client)
            return _("已移除 %(count)s 台信任设备", count=count)
        if not raw.isascii() or not raw.isdigit():
            raise InvalidInput(_("该设备不存在或已移除"))
        support.remove_trusted_devices(account, reason, by=g.user, client=g.client, device_id=int(raw))
        return _("已移除该信任设备,它下次登录需要二次验证")

    return _act(action)


@bp.post("/users/methods")
@requires(roles.SUPPORT)
def extra_methods():
    chosen = request.form.getlist("method")
    return _act(
        lambda account, reason: support.set_extra_methods(account, chosen, reason, by=g.user, client=g.client),
        _("已更新为该用户单独开启的验证方式"),
    )


@bp.post("/users/force-binding")
@requires(roles.SUPPORT)
def force_binding():
    force = request.form.get("force") == "on"

    def action(account: str, reason: str) -> str:
        accounts.set_policy(account, force=force, by=g.user, client=g.client, reason=reason)
        return _("已要求该用户绑定二次验证") if force else _("已取消对该用户的强制绑定")

    return _act(action)


@bp.post("/users/role")
@requires(roles.ROLE_CHANGE)
def set_role():
    role = request.form.get("role", "").strip()
    role = "" if role == "none" else role

    def action(account: str, reason: str) -> str:
        user = accounts.set_role(account, role, by=g.user, client=g.client, reason=reason)
        return _("角色已改为:%(role)s", role=roles.label(user.role) or _("无"))

    return _act(action)


def _act(action, notice: str | None = None):
    """Run ``action(account, reason)`` (its answer, when a str, is the notice) and show the panel again."""
    account = request.form.get("account", "")
    try:
        reason = support.require_reason(request.form.get("reason"))
        support.check_may_act(g.user, account)
        answer = action(account, reason)
    except DomainError as exc:
        return _support(account, error=exc.message, status=exc.status)
    return _support(account, notice=answer if isinstance(answer, str) else notice)


def _support(account: str, status: int = 200, **context):
    """The 用户支持 panel of one account (the whole page without htmx)."""
    account = account.strip()
    summary = None
    if account:
        try:
            summary = support.account_summary(account)
        except DomainError as exc:
            context.setdefault("error", exc.message)
            status = status if status != 200 else exc.status
    context.setdefault("query", account)
    admin = roles.allows(g.user, roles.ROLE_CHANGE)
    may_act = admin or not (summary and summary.user.is_staff)  # support.check_may_act
    context.update(labels=event_labels, can_change_roles=admin, may_act=may_act)
    context.update(role_choices=[("none", _("无(普通用户)")), *((key, roles.label(key)) for key in roles.ROLES)])
    return page_or_fragment(USER_TEMPLATE, "support", status, account=account, summary=summary, **context)
