"""登录设备: where the account is signed in; 退出 one browser session or all the others."""

from __future__ import annotations

from flask import Blueprint, g, redirect, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from portal.services import account_sessions
from portal.web import guard
from portal.web.render import is_htmx, page_or_fragment, redirect_to, targets

bp = Blueprint("account_sessions", __name__, url_prefix="/settings/security/sessions")
TEMPLATE = "security/sessions.html"
CONFIRM, DONE = "security/sessions/_end_others.html", "security/sessions/_done.html"  # its dialogs
CHANGED = "sessionsChanged"


@bp.get("")
def index():
    return _render("sessions" if targets("sessions") else "content")


# Row ids are 32-bit (PostgreSQL serial); a larger number would overflow SQLite's driver: 404 instead.
@bp.post("/<int(max=2147483647):session_id>/end")
def end(session_id: int):
    """退出 one session (another user's or an ended one: NotFound → 404); this very one is a logout."""
    if account_sessions.end_one(g.login, session_id, g.client):
        guard.set_session_cookie(None)
        return redirect_to(url_for("auth.login_form"))
    if not is_htmx():
        return redirect(url_for("account_sessions.index"), 303)
    return _render(notice=_("已退出该设备"))


@bp.get("/end-others")
def end_others_form():
    return _render("dialog", dialog=CONFIRM)


@bp.post("/end-others")
def end_others():
    count = account_sessions.end_others(g.login, g.client)
    return _render(
        "dialog",
        dialog=DONE,
        done=ngettext("已退出其他 %(num)s 台设备", "已退出其他 %(num)s 台设备", count),
        trigger=CHANGED,
    )


def _render(block: str = "sessions", trigger: str | None = None, **context):
    return page_or_fragment(TEMPLATE, block, trigger=trigger, logins=account_sessions.overview(g.login), **context)
