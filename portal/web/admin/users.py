"""用户支持 (/admin/users): find an account by the start of its address or name, see it, help its owner."""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _

from portal.services import accounts, reports, roles
from portal.services.errors import DomainError
from portal.web.admin import bp, requires
from portal.web.render import page_or_fragment

USER_TEMPLATE = "admin/user.html"


@bp.get("/users")
@requires(roles.USERS)
def user_support():
    """用户支持: ``q`` searches by the start of an address or name; ``account`` opens one account."""
    query = request.args.get("q", "").strip()
    if query and not request.args.get("account"):
        matches = reports.find_accounts(query)
        if len(matches) != 1:
            return page_or_fragment(USER_TEMPLATE, "support", query=query, matches=matches, summary=None)
        return _support(matches[0].account, query=query)
    return _support(request.args.get("account", ""))


@bp.post("/users/unlock")
@requires(roles.SUPPORT)
def unlock():
    return _act(lambda account: accounts.unlock(account, by=g.user, client=g.client), _("已解除锁定"))


@bp.post("/users/reset-2fa")
@requires(roles.SUPPORT)
def reset_2fa():
    reason = request.form.get("reason", "")
    return _act(
        lambda account: accounts.reset_2fa(account, reason, by=g.user, client=g.client),
        _("已重置二次验证:该用户需重新绑定,其登录会话和信任设备已失效"),
    )


@bp.post("/users/disable")
@requires(roles.SUPPORT)
def disable():
    return _act(lambda account: accounts.set_disabled(account, True, by=g.user, client=g.client), _("账号已停用"))


@bp.post("/users/enable")
@requires(roles.SUPPORT)
def enable():
    return _act(lambda account: accounts.set_disabled(account, False, by=g.user, client=g.client), _("账号已启用"))


def _act(action, notice: str):
    account = request.form.get("account", "")
    try:
        action(account)
    except DomainError as exc:
        return _support(account, error=exc.message, status=exc.status)
    return _support(account, notice=notice)


def _support(account: str, status: int = 200, **context):
    """The 用户支持 panel of one account (the whole page without htmx)."""
    account = account.strip()
    summary = None
    if account:
        try:
            summary = reports.account_summary(account)
        except DomainError as exc:
            context.setdefault("error", exc.message)
            status = status if status != 200 else exc.status
    context.setdefault("query", account)
    return page_or_fragment(USER_TEMPLATE, "support", status, account=account, summary=summary, **context)
