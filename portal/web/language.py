"""The language switch in every page's footer: the account keeps its choice, a cookie before login."""

from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, request
from flask_babel import refresh

from portal import i18n
from portal.services import accounts
from portal.web import guard

bp = Blueprint("language", __name__)
YEAR = 365 * 24 * 3600


@bp.post("/language")
@guard.public
def choose():
    language = i18n.normalise(request.form.get("language", ""))
    if g.user is not None:
        accounts.set_language(g.user, language)
    refresh()
    response = redirect(_back())
    secure = bool(current_app.config["SESSION_COOKIE_SECURE"])
    response.set_cookie(i18n.COOKIE, language, max_age=YEAR, httponly=True, samesite="Lax", secure=secure)
    return response


def _back() -> str:
    """The page the switch was on (a path of this site only), else the start page."""
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"
