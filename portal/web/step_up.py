"""安全验证 (step-up): a fresh verification before 生成专用密码, 全部清除 of trusted devices or binding another
factor. The gated views answer ``ask(action)`` when the service says so; once verified, ``proceed``
sends the browser on to what it asked for (the dialog it wanted, in the same #dialog-slot)."""

from __future__ import annotations

from flask import Blueprint, g, request, url_for
from flask_babel import gettext as _

from portal.services import factors, step_up
from portal.services.errors import DomainError
from portal.web import verify_dialog
from portal.web.render import load_into, page_or_fragment, redirect_to

bp = Blueprint("step_up", __name__, url_prefix="/settings/security/verify")
TEMPLATE = "security/step_up.html"


def _next(action: str) -> tuple[str, str]:
    """Where the verified action continues, and where its dialog's 取消 leads."""
    if action == "app-password":
        return url_for("app_passwords.new"), url_for("app_passwords.index")
    if action == "trusted-devices":
        return url_for("devices.clear_form"), url_for("devices.index")
    if action == "recovery-codes":
        return url_for("recovery_codes.index"), url_for("recovery_codes.index")
    if action == "secure-account":  # 保护帐号: back to its page, now able to act
        return url_for("secure_account.page"), url_for("secure_account.page")
    if action == "admin":  # back to the console: the change is made again, now verified
        return url_for("admin.index"), url_for("admin.index")
    if action == "remove-key":  # back to the list: 删除 again, now verified
        return url_for("security.twofa"), url_for("security.twofa")
    return url_for("security.bind_form", method=action.removeprefix("bind-")), url_for("security.twofa")


@bp.get("/<action>")
def verify_form(action: str):
    return ask(action, request.args.get("via", ""), request.args.get("mode", ""))


@bp.post("/<action>/push")
def verify_push(action: str):
    """重新发送授权请求 to the App, on the user's click."""
    return ask(action, "app", "push", resend=True)


@bp.post("/<action>/send-code")
def verify_send_code(action: str):
    """安全验证 by a code sent to the bound address (备用邮箱, 短信)."""
    step_up.check_action(action)
    via = request.form.get("via", "")
    try:
        factors.send_code(g.login, g.user, via, g.client)
    except DomainError as exc:
        return ask(action, via, "code", error=exc.message)
    return ask(action, via, "code")


@bp.post("/<action>")
def verify_submit(action: str):
    step_up.check_action(action)
    via = request.form.get("via", "")
    try:
        factors.reverify(g.login, via, request.form.get("code"), g.client)
    except DomainError as exc:
        return ask(action, via, "code", error=exc.message)
    return proceed(action)


def ask(action: str, via: str = "", mode: str = "", resend: bool = False, error: str | None = None):
    """The 安全验证 dialog for ``action`` (a fragment for htmx, else a page with the dialog open)."""
    step_up.check_action(action)
    cancel = _next(action)[1]
    dialog = verify_dialog.build(
        verify_dialog.Links("step_up", {"action": action}),
        before=_("%(action)s前", action=step_up.describe(action)),
        intro=_("为保护您的帐号,%(action)s前需要再验证一次身份。", action=step_up.describe(action)),
        purpose="verify",
        target=action,
        cancel_url=cancel,
        via=via,
        mode=mode,
        resend=resend,
        title=_("安全验证"),
    )
    return page_or_fragment(TEMPLATE, "dialog", v=dialog, error=error or dialog.challenge.error)


def proceed(action: str):
    """Verified: on to the dialog the action opens (htmx swaps it into #dialog-slot), or its page."""
    target, cancel = _next(action)
    if target == cancel:  # the action continues on a page of its own, not in a dialog
        return redirect_to(target)
    return load_into(target, "#dialog-slot")
