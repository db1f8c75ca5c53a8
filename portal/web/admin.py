"""/admin: reports for admins and user support (解锁, 重置二次验证, 停用/启用); admins with a full session only."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from flask_babel import gettext as _

from portal.oidc import clients
from portal.services import accounts, reports
from portal.services.errors import DomainError, NotAllowed
from portal.web.render import page_or_fragment

bp = Blueprint("admin", __name__, url_prefix="/admin")
USER_TEMPLATE = "admin/user.html"


@bp.before_request
def _admins_only():
    # The guard has already required a full session (password and second factor, or a trusted device).
    if not g.user.is_admin:
        raise NotAllowed(_("仅管理员可以访问此页面"))


@bp.get("")
def index():
    return render_template(
        "admin/index.html",
        adoption=reports.adoption(),
        activity=reports.activity(),
        periods=[label for label, _ in reports.PERIODS],
        lockouts=reports.lockouts(),
        failures=reports.recent_failures(),
        sso_clients=clients.listing(),
    )


@bp.get("/users")
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
def unlock():
    return _act(lambda account: accounts.unlock(account, by=g.user, client=g.client), _("已解除锁定"))


@bp.post("/users/reset-2fa")
def reset_2fa():
    reason = request.form.get("reason", "")
    return _act(
        lambda account: accounts.reset_2fa(account, reason, by=g.user, client=g.client),
        _("已重置二次验证:该用户需重新绑定,其登录会话和信任设备已失效"),
    )


@bp.post("/users/disable")
def disable():
    return _act(lambda account: accounts.set_disabled(account, True, by=g.user, client=g.client), _("账号已停用"))


@bp.post("/users/enable")
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
