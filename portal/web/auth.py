"""Login: account + password (/login), second step (/login/verify), logout."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.oidc import clients
from portal.services import approvals, factors, login, temporary_access, tickets, trust
from portal.services.errors import DomainError
from portal.web import continuation, guard, verify_dialog
from portal.web.render import is_htmx, redirect_to, scan_status

NOTICES = {
    "expired": _l("二维码已过期,已为您刷新,请重新扫码。"),
    "push_expired": _l("授权请求已过期,请重新发送,或选择扫二维码、验证码。"),
    "consumed": _l("该二维码已使用,请重新扫码。"),
    "refused": _l("本次授权未能完成,请使用验证码或重新扫码。"),
}

bp = Blueprint("auth", __name__)


@bp.get("/login")
@guard.public
def login_form():
    continuation.remember(request.args.get("rd"))  # forward auth: the page the browser asked for
    if g.login is not None:
        return redirect_to(continuation.after_login(g.login.stage))
    return render_template("auth/login.html", account="", **_signing_in_to())


@bp.post("/login")
@guard.public
def login_submit():
    account = request.form.get("account", "")
    try:
        step = login.password_step(account, request.form.get("password", ""), g.client, g.login, guard.trust_token())
    except DomainError as exc:
        return render_template("auth/login.html", account=account, error=exc.message, **_signing_in_to()), exc.status
    guard.set_session_cookie(step.token)
    return redirect_to(continuation.after_login(step.stage))


@bp.get("/login/verify")
@guard.second_step
def verify_form():
    return _verify_page()


@bp.post("/login/verify")
@guard.second_step
def verify_submit():
    method = request.form.get("method", "")
    try:
        step = login.second_step(g.login, method, request.form.get("code"), bool(request.form.get("trust")), g.client)
    except DomainError as exc:
        return _verify_page(method, error=exc.message, status=exc.status)
    return _logged_in(step)


@bp.get("/login/verify/scan/<int(max=2147483647):ticket_id>")
@guard.second_step
def verify_scan_poll(ticket_id: int):
    """Poll the 扫码授权 QR or the App push; once the phone approved, this browser is logged in."""
    progress = approvals.progress(g.login, ticket_id, g.client)
    if progress.state in ("pending", "scanned"):
        if is_htmx():
            return scan_status(progress.ticket, url_for("auth.verify_scan_poll", ticket_id=ticket_id), progress.state)
        return _verify_page(progress.ticket.method)
    if progress.step is None:
        ticket, push = progress.ticket, progress.ticket.channel == "push"
        # A push the person turned down is not sent again by itself; a wrong number is a slip (resend).
        refused = progress.state == "refused" or (
            push and progress.state == tickets.DENIED and ticket.deny_reason != tickets.NUMBER_MISMATCH
        )
        notice = "push_expired" if push and progress.state == tickets.EXPIRED else progress.state
        mode = "code" if refused else None
        return redirect_to(
            url_for("auth.verify_form", method=ticket.method, mode=mode, notice=notice, reason=ticket.deny_reason)
        )
    return _logged_in(progress.step)


@bp.post("/login/verify/push")
@guard.second_step
def verify_push():
    """重新发送授权请求: a new App push, on the user's click only."""
    challenge = approvals.challenge(g.login, g.user, "app", "push", g.client, resend=True)
    if challenge.error:
        return _verify_page("app", error=challenge.error, mode="code")
    return redirect_to(url_for("auth.verify_form", method="app"))


@bp.post("/login/verify/send-code")
@guard.second_step
def verify_send_code():
    """备用邮箱 or 短信 as the second step: send a code to the bound address, then ask for it."""
    method = request.form.get("method", "")
    try:
        factors.send_code(g.login, g.user, method, g.client)
    except DomainError as exc:
        return _verify_page(method, error=exc.message, status=exc.status)
    return redirect_to(url_for("auth.verify_form", method=method))


def _signing_in_to() -> dict:
    """The app a single sign-on login is for (网页邮箱, …), named on the login page."""
    client = clients.asking(continuation.peek())
    return {"app_name": client.name if client else None}


def _logged_in(step: login.Step):
    guard.set_session_cookie(step.token)
    if step.trust_token:
        guard.set_trust_cookie(step.trust_token, int(trust.lifetime().total_seconds()))
    return redirect_to(continuation.after_login(step.stage))


@bp.get("/login/continue")
def continue_after_login():
    """进入邮箱 after a forced binding: back to what sent the browser to the login, or the 欢迎页."""
    return redirect_to(continuation.after_login(g.login.stage))


def _verify_page(method: str | None = None, error: str | None = None, status: int = 200, mode: str | None = None):
    usable = {m.key: m for m in factors.choices(g.user)}
    if temporary_access.offered(g.user):  # 使用临时访问码, issued by the helpdesk
        usable[temporary_access.KEY] = temporary_access.TEMPORARY
    if not usable:  # the factor was removed meanwhile (e.g. unbound from another browser)
        error = _("该账号已没有可用的验证方式,请返回登录页重新登录")
        return render_template("auth/verify.html", method=None, choices=[], error=error, trust_days=0), status
    method = method if method in usable else request.args.get("method", "")
    method = method if method in usable else approvals.preferred(_factors(usable), g.user.default_method)
    # Only a page visit asks the phone; a refused code shows the code form again.
    mode = mode if mode is not None else (request.args.get("mode", "") if request.method == "GET" else "code")
    challenge = approvals.challenge(g.login, g.user, method, mode, g.client)
    return render_template(
        "auth/verify.html",
        method=usable[method],
        choices=list(usable.values()),
        challenge=challenge,
        error=error or challenge.error or login.lock_notice(g.user, g.client) or _notice(),
        trust_days=int(trust.lifetime().days) if trust.allowed(g.user) and method in _factors(usable) else 0,
        temporary=temporary_access.KEY in usable,
        poll=url_for("auth.verify_scan_poll", ticket_id=challenge.new.ticket.id) if challenge.new else None,
        extra=usable[method].challenge_context(g.login, g.user),
        links=verify_dialog.Links("auth", field="method"),
    ), status


def _factors(usable: dict) -> list[str]:
    """The methods a login opens with by itself: a temporary code only when chosen (or the only way)."""
    return [key for key in usable if key != temporary_access.KEY] or list(usable)


def _notice() -> str | None:
    """The message a redirect after a denied or expired QR/push carries."""
    notice = request.args.get("notice", "")
    if notice == "denied":
        return approvals.DENIED.get(request.args.get("reason", ""), approvals.REFUSED)
    return NOTICES.get(notice)


@bp.post("/logout")
@guard.public
def logout():
    if g.login is not None:
        login.logout(g.login, g.client)
    guard.set_session_cookie(None)
    return redirect_to(url_for("auth.login_form"))
