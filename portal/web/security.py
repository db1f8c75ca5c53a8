"""二次验证设置: the methods table and its 绑定 / 解绑 / 修改 dialogs (htmx fragments)."""

from __future__ import annotations

from flask import Blueprint, g, request

from portal.services import factors, login, otp
from portal.services.errors import DomainError, NotFound
from portal.services.policy import METHODS
from portal.web import guard
from portal.web.render import page_or_fragment

bp = Blueprint("security", __name__, url_prefix="/settings/security/2fa")
TEMPLATE = "security/twofa.html"
CHANGED = "factorsChanged"


@bp.get("")
@guard.binding_ok
def twofa():
    block = "methods" if request.headers.get("HX-Target") == "methods" else "content"
    return _render(block)


@bp.get("/totp/bind")
@guard.binding_ok
def bind_totp_form():
    try:
        enrollment = factors.begin_totp(g.login, g.user)
    except DomainError as exc:
        return _render("dialog", dialog="message", error=exc.message)
    return _bind_dialog(enrollment)


@bp.post("/totp/bind")
@guard.binding_ok
def bind_totp_submit():
    enrollment_id = _row_id(request.form.get("enrollment", ""))
    try:
        factors.confirm_totp(g.login, g.user, enrollment_id, request.form.get("code"), g.client)
        new_token = login.finish_forced_binding(g.login, g.client)
    except DomainError as exc:
        return _bind_dialog(factors.pending_totp(g.login, enrollment_id), error=exc.message)
    if new_token:
        guard.set_session_cookie(new_token)
    return _render("dialog", dialog="done", done="绑定成功", forced=bool(new_token), trigger=CHANGED)


@bp.get("/<method>/<action>")
def verify_form(method: str, action: str):
    _check_target(method, action)
    return _verify_dialog(method, action, request.args.get("via", method))


@bp.post("/<method>/<action>")
def verify_submit(method: str, action: str):
    _check_target(method, action)
    via = request.form.get("via", method)
    try:
        if action == "unbind":
            factors.unbind(g.login, g.user, method, via, request.form.get("code"), g.client)
            return _render("dialog", dialog="done", done="解绑成功", trigger=CHANGED)
        factors.authorize_change(g.login, g.user, method, via, request.form.get("code"), g.client)
        enrollment = factors.begin_totp(g.login, g.user)
    except DomainError as exc:
        return _verify_dialog(method, action, via, error=exc.message)
    return _bind_dialog(enrollment)


def _row_id(raw: str) -> int:
    """A database id from a form field: ASCII digits within 32 bits, else 0 (matches nothing)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


def _check_target(method: str, action: str) -> None:
    if method not in METHODS or action not in ("unbind", "change"):
        raise NotFound("页面不存在")


def _bind_dialog(enrollment, error: str | None = None):
    if enrollment is None:
        return _render("dialog", dialog="message", error=error or "绑定已过期,请重新开始")
    return _render(
        "dialog", dialog="bind_totp", enrollment=enrollment, grouped=otp.grouped(enrollment.secret), error=error
    )


def _verify_dialog(method: str, action: str, via: str, error: str | None = None):
    bound = factors.bound_methods(g.user)
    if method not in bound:
        return _render("dialog", dialog="message", error="该验证方式未绑定")
    via = via if via in bound else method
    return _render(
        "dialog",
        dialog="verify",
        target=METHODS[method],
        action=action,
        via=METHODS[via],
        others=[METHODS[m] for m in bound if m != via],
        error=error,
    )


def _render(block: str, trigger: str | None = None, **context):
    rows = factors.overview(g.user)
    return page_or_fragment(
        TEMPLATE, block, trigger=trigger, rows=rows, forced_banner=g.login.stage == "binding", **context
    )
