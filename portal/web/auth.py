"""Login: account + password (/login), second step (/login/verify), logout."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request, url_for

from portal.services import backup_email, factors, login, scans, tickets, trust
from portal.services.errors import DomainError
from portal.services.policy import METHODS
from portal.web import guard
from portal.web.render import redirect_to
from portal.web.scanning import scan_status

PREFERRED = ("app", "wechat", "totp", "email")  # the default second step: the manual's recommended first
NOTICES = {
    "denied": "您已在手机上拒绝本次登录。如非本人操作,请及时修改密码。",
    "expired": "二维码已过期,已为您刷新,请重新扫码。",
    "push_expired": "授权请求已过期,已重新发送到您的 App,请查看 App 中的数字。",
    "consumed": "该二维码已使用,请重新扫码。",
}

bp = Blueprint("auth", __name__)


@bp.get("/login")
@guard.public
def login_form():
    if g.login is not None:
        return redirect_to(guard.home_for(g.login.stage))
    return render_template("auth/login.html", account="")


@bp.post("/login")
@guard.public
def login_submit():
    account = request.form.get("account", "")
    try:
        step = login.password_step(
            account, request.form.get("password", ""), g.client, g.login, request.cookies.get(guard.TRUST_COOKIE)
        )
    except DomainError as exc:
        return render_template("auth/login.html", account=account, error=exc.message), exc.status
    guard.set_session_cookie(step.token)
    return redirect_to(guard.home_for(step.stage))


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
    """Poll the 扫码授权 QR; once the phone approved, this browser is logged in."""
    progress = scans.progress(g.login, ticket_id, g.client)
    if progress.state in ("pending", "scanned"):
        if request.headers.get("HX-Request") == "true":
            return scan_status(progress.ticket, url_for("auth.verify_scan_poll", ticket_id=ticket_id), progress.state)
        return _verify_page(progress.ticket.method)
    if progress.step is None:
        ticket, push = progress.ticket, progress.ticket.channel == "push"
        # A push the person turned down is not sent again by itself (a wrong number is a slip: retry):
        # the page offers the App's code, and "App 授权" sends a new push on request.
        refused = push and progress.state == tickets.DENIED and ticket.deny_reason != tickets.NUMBER_MISMATCH
        notice = "push_expired" if push and progress.state == tickets.EXPIRED else progress.state
        mode = "code" if refused else None
        return redirect_to(
            url_for("auth.verify_form", method=ticket.method, mode=mode, notice=notice, reason=ticket.deny_reason)
        )
    return _logged_in(progress.step)


@bp.post("/login/verify/email-code")
@guard.second_step
def verify_email_send():
    """备用邮箱 as the second step: mail a code to the bound address, then ask for it."""
    try:
        backup_email.send_verify_code(g.login, g.user, g.client)
    except DomainError as exc:
        return _verify_page(backup_email.METHOD, error=exc.message, status=exc.status)
    return redirect_to(url_for("auth.verify_form", method=backup_email.METHOD))


def _logged_in(step: login.Step):
    guard.set_session_cookie(step.token)
    if step.trust_token:
        guard.set_trust_cookie(step.trust_token, int(trust.lifetime().total_seconds()))
    return redirect_to(url_for("home.welcome"))


def _verify_page(method: str | None = None, error: str | None = None, status: int = 200):
    bound = factors.bound_methods(g.user)
    if not bound:  # the factor was removed meanwhile (e.g. unbound from another browser)
        error = "该账号已没有可用的验证方式,请返回登录页重新登录"
        return render_template("auth/verify.html", method=None, choices=[], error=error, trust_days=0), status
    method = method if method in bound else request.args.get("method", "")
    method = method if method in bound else min(bound, key=PREFERRED.index)
    choices = [METHODS[m] for m in bound]
    new, mode = None, request.args.get("mode", "")
    if method in scans.SCAN_METHODS and mode != "code" and request.method == "GET":
        channel = "push" if method == "app" and mode != "qr" else "qr"
        try:
            new = scans.start_login(g.login, method, g.client, channel)
        except DomainError as exc:  # too many pushes: the QR and the code still work
            error = error or exc.message
    return render_template(
        "auth/verify.html",
        method=METHODS[method],
        choices=choices,
        error=error or _notice(),
        trust_days=int(trust.lifetime().days) if trust.allowed(g.user) else 0,
        new=new,
        poll=url_for("auth.verify_scan_poll", ticket_id=new.ticket.id) if new else None,
        can_scan=method in scans.SCAN_METHODS,
        **(backup_email.mailbox(g.login, g.user) if method == backup_email.METHOD else {}),
    ), status


def _notice() -> str | None:
    """The message a redirect after a denied or expired QR/push carries."""
    notice = request.args.get("notice", "")
    if notice == "denied":
        return scans.DENIED.get(request.args.get("reason", ""), NOTICES["denied"])
    return NOTICES.get(notice)


@bp.post("/logout")
@guard.public
def logout():
    if g.login is not None:
        login.logout(g.login, g.client)
    guard.set_session_cookie(None)
    return redirect_to(url_for("auth.login_form"))
