"""二次验证设置: the methods table and its 绑定 / 解绑 / 修改 dialogs (htmx fragments)."""

from __future__ import annotations

from flask import Blueprint, g, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.services import approvals, bind_later, factors, sessions, temporary_access
from portal.services.errors import DomainError, NotFound
from portal.services.factors import METHODS, recovery
from portal.services.step_up import StepUpRequired
from portal.web import continuation, guard, step_up, verify_dialog
from portal.web.render import is_htmx, page_or_fragment, redirect_to, retarget, scan_status, targets

bp = Blueprint("security", __name__, url_prefix="/settings/security/2fa")
TEMPLATE = "security/twofa.html"
# The dialogs of the page, one partial each (a method's bind dialog is included by BIND).
BIND, VERIFY = "security/dialog/_bind.html", "security/_verify.html"
WAITING, DONE, MESSAGE = "security/dialog/_waiting.html", "security/dialog/_done.html", "security/dialog/_message.html"
CHANGED = "factorsChanged"
# What the verification is for, before the method's hint: "解绑第三方 OTP前"
ACTIONS = {"unbind": _l("解绑%(label)s前"), "change": _l("修改%(label)s前")}
PURPOSES = {"unbind": "unbind", "change": "rebind"}  # the phone's ticket for each


@bp.get("")
@guard.binding_ok
def twofa():
    block = "methods" if targets("methods") else "content"
    return _render(block)


@bp.get("/<method>/bind")
@guard.binding_ok
def bind_form(method: str):
    return _bind_step(method, lambda: factors.begin_bind(g.login, g.user, method, g.client), reopen=False)


@bp.post("/<method>/send")
@guard.binding_ok
def bind_send(method: str):
    """发送验证码 to the address typed in the bind dialog (备用邮箱, 短信)."""
    return _bind_step(method, lambda: factors.send_bind_code(g.login, g.user, method, request.form, g.client))


@bp.post("/<method>/bind")
@guard.binding_ok
def bind_submit(method: str):
    return _bind_step(method, lambda: factors.bind(g.login, g.user, method, request.form, g.client))


def _bind_step(method: str, step, reopen: bool = True):
    """Run one step of a bind dialog: the dialog's next state, 绑定成功, or the error (``reopen``: in the
    dialog again, as the submitted form left it)."""
    factors.method(method)  # an unknown one: 404
    try:
        outcome = step()
    except StepUpRequired as exc:  # another factor next to a bound one: prove a bound one first
        return step_up.ask(exc.action)
    except DomainError as exc:
        if not reopen:
            return _render("dialog", dialog=MESSAGE, error=exc.message)
        try:
            again = factors.begin_bind(g.login, g.user, method, g.client, form=request.form)
        except DomainError as refused:
            return _render("dialog", dialog=MESSAGE, error=refused.message)
        return _bind_dialog(again, error=exc.message)
    if isinstance(outcome, factors.Bound):
        return _bound(outcome.token)
    return _bind_dialog(outcome)


@bp.post("/<method>/change-by-temporary-code")
@guard.binding_ok
def change_by_temporary_code(method: str):
    """修改 the lost factor after a login by 临时访问码: the code was the verification; the bind dialog next."""
    factors.method(method)  # an unknown one: 404
    try:
        temporary_access.authorize_change(g.login, g.user, method, g.client)
        next_step = factors.begin_bind(g.login, g.user, method, g.client)
    except DomainError as exc:
        return _render("dialog", dialog=MESSAGE, error=exc.message)
    return _bind_dialog(next_step)


@bp.post("/default")
def default_method():
    """默认验证方式: saved at once (no verification: every bound method still opens the second step)."""
    try:
        factors.set_default(g.user, request.form.get("method", ""), g.client)
    except DomainError as exc:
        return _render("methods", default_error=exc.message, status=400)
    return _render("methods", default_saved=True)


@bp.post("/<method>/credentials/<int(max=2147483647):credential_id>/delete")
def remove_credential(method: str, credential_id: int):
    """删除 one 安全密钥 (after a fresh verification; the last one unbinds the method)."""
    try:
        factors.method(method).remove_credential(g.login, g.user, credential_id, g.client)
    except StepUpRequired as exc:
        return step_up.ask(exc.action)
    except DomainError as exc:
        return _render("dialog", dialog=MESSAGE, error=exc.message)
    return _render("dialog", dialog=DONE, done=_("删除成功"), trigger=CHANGED)


@bp.get("/scan/<int(max=2147483647):ticket_id>")
@guard.binding_ok
def scan_poll(ticket_id: int):
    """Poll a QR or push of a dialog; when the phone has decided, the dialog becomes the result."""
    progress = approvals.progress(g.login, ticket_id, g.client)
    if progress.state in ("pending", "scanned"):
        poll = url_for("security.scan_poll", ticket_id=ticket_id)
        if not is_htmx():  # no JavaScript: the page, still waiting
            return _render("dialog", dialog=WAITING, ticket=progress.ticket, poll=poll, state=progress.state)
        return scan_status(progress.ticket, poll, progress.state)
    if progress.state != "done":
        return retarget(_render("dialog", dialog=MESSAGE, error=_final_message(progress)), "#dialog-slot")
    if progress.ticket.purpose == "verify":  # step-up done: on to what it was asked for
        return step_up.proceed(progress.ticket.target)
    if progress.next is not None:
        return retarget(_bind_dialog(progress.next), "#dialog-slot")
    if progress.step is not None:
        guard.set_session_cookie(progress.step.token)
    dialog = _render("dialog", dialog=DONE, done=progress.message, forced=progress.step is not None, trigger=CHANGED)
    return retarget(dialog, "#dialog-slot")


@bp.get("/<method>/<action>")
def verify_form(method: str, action: str):
    _check_target(method, action)
    return _verify_dialog(method, action, request.args.get("via", method), mode=request.args.get("mode", ""))


@bp.post("/<method>/<action>/push")
def verify_push(method: str, action: str):
    """重新发送授权请求 to the App, on the user's click."""
    _check_target(method, action)
    return _verify_dialog(method, action, "app", mode="push", resend=True)


@bp.post("/<method>/<action>/send-code")
def verify_send_code(method: str, action: str):
    """解绑 / 修改 verified by a code sent to the bound address (备用邮箱, 短信)."""
    _check_target(method, action)
    via = request.form.get("via", "")
    try:
        factors.send_code(g.login, g.user, via, g.client)
    except DomainError as exc:
        return _verify_dialog(method, action, via, error=exc.message, mode="code")
    return _verify_dialog(method, action, via, mode="code")


@bp.post("/<method>/<action>")
def verify_submit(method: str, action: str):
    _check_target(method, action)
    via = request.form.get("via", method)
    try:
        if action == "unbind":
            factors.unbind(g.login, g.user, method, via, request.form.get("code"), g.client)
            return _render("dialog", dialog=DONE, done=_("解绑成功"), trigger=CHANGED)
        factors.authorize_change(g.login, g.user, method, via, request.form.get("code"), g.client)
        next_step = factors.begin_bind(g.login, g.user, method, g.client)
    except DomainError as exc:
        return _verify_dialog(method, action, via, error=exc.message, mode="code")
    return _bind_dialog(next_step)


def _check_target(method: str, action: str) -> None:
    if method not in METHODS or action not in ACTIONS:
        raise NotFound(_("页面不存在"))


def _bound(new_token: str | None):
    """A factor was just bound: 绑定成功 (and, after forced binding, the way into the mailbox)."""
    if new_token:
        guard.set_session_cookie(new_token)
    suggest = not new_token and not recovery.remaining(g.user)  # the first factor: 备用码 are offered now
    return _render(
        "dialog", dialog=DONE, done=_("绑定成功"), forced=bool(new_token), suggest_recovery=suggest, trigger=CHANGED
    )


def _final_message(progress: approvals.Progress) -> str:
    if progress.state in ("denied", "refused"):
        return progress.message
    if progress.state == "expired":
        return _("二维码已过期,请关闭后重新操作")
    return _("该二维码已处理")


def _bind_dialog(pending: factors.Pending | None, error: str | None = None):
    """The dialog that binds a new factor: the method's own partial (a secret, a sent code, a QR, a key)."""
    if pending is None or pending.state is None:
        return _render("dialog", dialog=MESSAGE, error=error or _("绑定已过期,请重新开始"))
    ticket = getattr(pending.state, "ticket", None)
    poll = url_for("security.scan_poll", ticket_id=ticket.id) if ticket is not None else None
    return _render("dialog", dialog=BIND, pending=pending, poll=poll, error=error)


@bp.post("/later")
@guard.binding_ok
def bind_later_post():
    """稍后绑定 on the forced-binding page: counted once, then into the mailbox as if not forced this time."""
    try:
        token = bind_later.snooze(g.login, g.client)
    except DomainError as exc:
        return _render("content", status=exc.status, later_error=exc.message)
    guard.set_session_cookie(token)
    return redirect_to(continuation.after_login(sessions.FULL))


def _verify_dialog(method: str, action: str, via: str, error: str | None = None, mode: str = "", resend=False):
    """The 解绑 / 修改 verification of ``method`` by ``via`` (push, QR or code)."""
    if method not in factors.bound_methods(g.user):
        return _render("dialog", dialog=MESSAGE, error=_("该验证方式未绑定"))
    try:
        dialog = verify_dialog.build(
            verify_dialog.Links("security", {"method": method, "action": action}),
            before=ACTIONS[action] % {"label": METHODS[method].label},
            purpose=PURPOSES[action],
            target=method,
            cancel_url=url_for("security.twofa"),
            via=via,
            mode=mode,
            resend=resend,
        )
    except DomainError as exc:  # e.g. the last factor of a forced user: nothing to verify for
        return _render("dialog", dialog=MESSAGE, error=exc.message)
    return _render("dialog", dialog=VERIFY, v=dialog, error=error or dialog.challenge.error)


def _render(block: str, trigger: str | None = None, status: int = 200, **context):
    return page_or_fragment(
        TEMPLATE,
        block,
        status=status,
        trigger=trigger,
        rows=factors.overview(g.user),
        defaults=factors.default_choices(g.user),
        recovery_left=recovery.remaining(g.user),
        forced_banner=g.login.stage == sessions.BINDING,
        temporary_session=temporary_access.in_session(g.login),
        later=bind_later.offer(g.user) if g.login.stage == sessions.BINDING else None,
        **context,
    )
