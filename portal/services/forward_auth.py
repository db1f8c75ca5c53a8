"""Forward auth for nginx ``auth_request``: may this browser open this URL of another campus app?

nginx asks ``GET /authz/verify`` before every request to a protected app, with the browser's own
headers (the portal cookie among them), ``X-Original-URL`` and the shared secret. auth_request
understands only 2xx (allow), 401 and 403; anything else becomes a 500 for the user, so every refusal
here is a 401 or a 403:

- 403: the caller is not our nginx (secret unset or wrong), or the URL is not of an allow-listed host
  (a configuration error: logged, not audited); or the user is logged in but may not pass (disabled,
  forced binding pending). Never 401 there: the login page would send the browser straight back.
- 401: no session, or only half logged in. Page requests also get ``Location`` (the portal login
  with ``rd``); XHR and requests that do not accept HTML get a bare 401 (nginx redirects only when
  there is a Location).
- 200: a full session of an enabled user, with ``Remote-User`` / ``Remote-Email`` (the account) and
  ``Remote-Name`` (the display name, UTF-8 percent-encoded: header values must be ASCII).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from flask import current_app

from portal import config as config_module
from portal import crypto
from portal.models import LoginSession, User
from portal.services import audit, sessions
from portal.services.client import Client

log = logging.getLogger(__name__)

MAX_TARGET = 4096  # longer URLs are still checked, but not carried through the login as rd
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    """One auth_request subrequest, as nginx sends it."""

    secret: str | None
    original_url: str | None
    cookie_token: str | None  # the portal session cookie the browser sent
    xhr: bool  # X-Requested-With: XMLHttpRequest
    accepts_html: bool


def plain_url_text(url: str) -> bool:
    """ASCII without whitespace, control characters or backslashes (what browsers may read differently)."""
    return url.isascii() and "\\" not in url and not any(c.isspace() or not c.isprintable() for c in url)


def allowed_url(url: str | None) -> bool:
    """An absolute URL on an allow-listed host: https (or http while the portal itself is on http),
    no userinfo, a well-formed port (not compared), ASCII without whitespace, controls or backslashes."""
    if not url or not plain_url_text(url):
        return False
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        return False
    schemes = {"https"} if str(current_app.config["PUBLIC_URL"]).startswith("https://") else {"https", "http"}
    if parts.scheme not in schemes or "@" in parts.netloc or not hostname:
        return False
    return hostname.rstrip(".") in config_module.forward_auth_hosts(current_app.config)


def safe_redirect(url: str | None) -> str | None:
    """``url`` if a login may send the browser there afterwards (rd), else None."""
    return url if url and len(url) <= MAX_TARGET and allowed_url(url) else None


def caller_allowed(secret: str | None) -> bool:
    """Only our nginx knows PORTAL_FORWARD_AUTH_SECRET; without one configured nobody passes."""
    expected = str(current_app.config["FORWARD_AUTH_SECRET"])
    if not expected:
        log.warning("forward auth refused: PORTAL_FORWARD_AUTH_SECRET is not set")
        return False
    if not hmac.compare_digest((secret or "").encode("utf-8", "replace"), expected.encode("utf-8")):
        log.warning("forward auth refused: wrong or missing X-Forward-Auth-Secret")
        return False
    return True


def verify(query: Query, session: LoginSession | None, client: Client) -> Answer:
    """The answer for one subrequest; ``session`` is the live session the cookie names, if any."""
    if not caller_allowed(query.secret):
        return Answer(403, dict(NO_STORE))
    if not allowed_url(query.original_url):
        log.warning(
            "forward auth refused: X-Original-URL %.200r is not on PORTAL_FORWARD_AUTH_HOSTS", query.original_url
        )
        return Answer(403, dict(NO_STORE))
    if session is None:
        owner = _session_owner(query.cookie_token)  # a read on this path only, never on the 200 path
        if owner is not None and owner.disabled:  # its sessions were ended: 403, not a login loop
            return _denied(query, owner, "disabled", client)
        return _login_needed(query)
    if session.stage == sessions.SECOND_FACTOR:
        return _login_needed(query)
    if session.stage != sessions.FULL:  # forced binding pending: only the portal's binding pages
        return _denied(query, session.user, "binding pending", client)
    user = session.user
    if not _header_safe(user.account):
        log.warning("forward auth refused: account %r cannot travel in a header", user.account)
        return Answer(403, dict(NO_STORE))
    identity = {"Remote-User": user.account, "Remote-Email": user.account, "Remote-Name": quote(user.name, safe="")}
    return Answer(200, {**identity, **NO_STORE})


def _login_needed(query: Query) -> Answer:
    headers = dict(NO_STORE)
    if not query.xhr and query.accepts_html:
        headers["Location"] = login_url(query.original_url)
    return Answer(401, headers)


def login_url(original_url: str | None) -> str:
    """``<PUBLIC_URL>/login?rd=<original URL, percent-encoded>`` (no rd when it could not come back)."""
    base = str(current_app.config["PUBLIC_URL"]).rstrip("/") + "/login"
    target = safe_redirect(original_url)
    return f"{base}?rd={quote(target, safe='')}" if target else base


def _denied(query: Query, user: User, reason: str, client: Client) -> Answer:
    """403 for a user who is logged in but may not pass; audited for page loads only (not every asset)."""
    if not query.xhr and query.accepts_html:
        host = urlsplit(query.original_url or "").hostname or ""
        audit.record("forward_auth", user=user, outcome="denied", client=client, detail=f"{reason}: {host}")
    return Answer(403, dict(NO_STORE))


def _session_owner(token: str | None) -> User | None:
    """Whose session (live or ended) the cookie token names."""
    if not token or len(token) > 128:
        return None
    row = (
        LoginSession.select(LoginSession, User)
        .join(User)
        .where(LoginSession.token_hash == crypto.token_hash(token))
        .first()
    )
    return row.user if row else None


def _header_safe(value: str) -> bool:
    return bool(value) and value.isascii() and value.isprintable() and not any(c.isspace() for c in value)
