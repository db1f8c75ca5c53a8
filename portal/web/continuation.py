"""Where a browser goes once both login steps are done: back to what sent it to /login.

Three things send a browser to the login and want it back: an OpenID Connect authorization request
(``/oauth/authorize?…`` on this portal), nginx forward auth (``rd``: an absolute URL on a host of
PORTAL_FORWARD_AUTH_HOSTS) and the 保护帐号 link of a security notice (one of PAGES). The target is
checked when it is remembered and again when it is used,
kept in the signed Flask session for PORTAL_PENDING_MINUTES, and used once. Anything else is
dropped: no open redirect.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

from flask import current_app, session, url_for

from portal.db import UNAVAILABLE_ERRORS
from portal.oidc import clients
from portal.services import forward_auth, sessions
from portal.web.guard import home_for

KEY = "continue_to"
INTERNAL_PREFIXES = ("/oauth/authorize?",)
PAGES = ("/settings/security/secure",)  # this portal's own pages a link may log in to (保护帐号, from a notice)


def safe_target(target: str | None) -> str | None:
    """``target`` if the login may send the browser there afterwards, else None.

    Relative: only this portal's OIDC authorization (never ``//host`` or ``/\\host``). Absolute: the
    forward-auth rules (``forward_auth.safe_redirect``: https, an allow-listed host, no userinfo, …).
    """
    if target in PAGES:
        return target
    if target and target.startswith("/"):
        internal = target.startswith(INTERNAL_PREFIXES) and not target.startswith("//")
        ok = internal and len(target) <= forward_auth.MAX_TARGET and forward_auth.plain_url_text(target)
        return target if ok else None
    return forward_auth.safe_redirect(target)


def remember(target: str | None) -> None:
    """Come back to ``target`` after the login (ignored when it is not a safe target)."""
    target = safe_target(target)
    if target:
        session[KEY] = {"to": target, "at": int(time.time())}


def take() -> str | None:
    """The remembered target, once; None when there is none or it is too old."""
    target = peek()
    session.pop(KEY, None)
    return target


def peek() -> str | None:
    """The remembered target, left in place."""
    entry = session.get(KEY)
    if not isinstance(entry, dict):
        return None
    max_age = int(current_app.config["PENDING_MINUTES"]) * 60
    if time.time() - int(entry.get("at", 0)) > max_age:
        return None
    return safe_target(entry.get("to"))


ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?")


def form_action_origins() -> list[str]:
    """Other origins a login form's POST may end at, for CSP ``form-action`` (browsers apply it to
    every redirect after a form submission): the registered redirect URI of the pending authorization
    request, or the forward-auth target itself."""
    target = peek()
    if target and target.startswith(INTERNAL_PREFIXES):
        try:
            client = clients.asking(target)
        except UNAVAILABLE_ERRORS:  # the 系统繁忙 page itself must not fail on its way out
            return []
        registered = clients.redirect_uris(client) if client else []
        asked = parse_qs(urlsplit(target).query).get("redirect_uri", [""])[0]
        target = asked if asked in registered else (registered[0] if not asked and len(registered) == 1 else None)
    if not target:
        return []
    parts = urlsplit(target)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return [origin] if ORIGIN_RE.fullmatch(origin) else []


def after_login(stage: str | None) -> str:
    """Where a session at ``stage`` goes now: the remembered target once it is full, else its page."""
    if stage == sessions.FULL:
        return take() or url_for("home.welcome")
    return home_for(stage)
