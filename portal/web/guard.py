"""Who may reach which view: default deny, by login stage.

Every view needs a full session unless it is marked ``public``, ``second_step``
(half-logged-in sessions) or ``binding_ok`` (forced-binding sessions too).
"""

from __future__ import annotations

from flask import Flask, current_app, g, request, url_for

from portal import config as config_module
from portal import crypto
from portal.services import sessions
from portal.services.client import Client
from portal.web.render import redirect_to

SESSION_COOKIE = "portal_sid"
TRUST_COOKIE = "portal_trust"
# A long-lived random id of this browser, given at the login pages: new device / new place (new_sign_ins).
BROWSER_COOKIE = "portal_browser"
BROWSER_COOKIE_SECONDS = 400 * 24 * 3600  # the longest browsers keep a cookie
# Over https the cookies carry the __Host- prefix: browsers then accept them only Secure, host-only
# (no Domain) and for Path=/, so no sibling host or plain-http page can plant or shadow them.
HOST_PREFIX = "__Host-"
# A session cookie shared with sibling hosts (PORTAL_SESSION_COOKIE_DOMAIN) has a Domain, which
# __Host- forbids: it is __Secure- (Secure still required; siblings under that domain can set it).
SECURE_PREFIX = "__Secure-"

PUBLIC, SECOND_STEP, BINDING_OK, FULL_ONLY = "public", "second_step", "binding_ok", "full"
ALLOWED_STAGES = {
    SECOND_STEP: {sessions.SECOND_FACTOR},
    BINDING_OK: {sessions.BINDING, sessions.FULL},
    FULL_ONLY: {sessions.FULL},
}
_exempt_blueprints: set[str] = set()


def _mark(access: str):
    def decorate(view):
        view.access = access
        return view

    return decorate


public, second_step, binding_ok = _mark(PUBLIC), _mark(SECOND_STEP), _mark(BINDING_OK)


def exempt_blueprint(name: str) -> None:
    """Blueprints with their own authentication (JSON APIs, mail servers)."""
    _exempt_blueprints.add(name)


def is_exempt() -> bool:
    """True for a request to a blueprint with its own authentication (and its own input parsing)."""
    return request.blueprint in _exempt_blueprints


def init_app(app: Flask) -> None:
    app.before_request(_load_login)
    app.before_request(_enforce)
    app.after_request(_write_cookies)


def _load_login() -> None:
    g.cookies = {}
    g.client = Client.of(request.remote_addr, request.user_agent.string, _browser_id())
    g.login = sessions.resolve(request.cookies.get(cookie_name(SESSION_COOKIE)))
    g.user = g.login.user if g.login else None


def _browser_id() -> str:
    """This browser's portal_browser cookie; the login pages give one to a browser that has none."""
    browser = request.cookies.get(cookie_name(BROWSER_COOKIE), "")
    if (not browser or len(browser) > 128) and request.blueprint == "auth":
        browser = crypto.new_token()
        g.cookies[BROWSER_COOKIE] = (browser, BROWSER_COOKIE_SECONDS)
    return browser if len(browser) <= 128 else ""


def _enforce():
    view = current_app.view_functions.get(request.endpoint) if request.url_rule else None
    if view is None or request.blueprint in _exempt_blueprints or request.endpoint == "static":
        return None
    access = getattr(view, "access", FULL_ONLY)
    stage = g.login.stage if g.login else None
    if access == PUBLIC or stage in ALLOWED_STAGES[access]:
        return None
    return redirect_to(home_for(stage))


def home_for(stage: str | None) -> str:
    """Where a session at ``stage`` belongs."""
    if stage == sessions.SECOND_FACTOR:
        return url_for("auth.verify_form")
    if stage == sessions.BINDING:
        return url_for("security.twofa")
    if stage == sessions.FULL:
        return url_for("home.welcome")
    return url_for("auth.login_form")


def cookie_name(name: str) -> str:
    """The name a cookie has on this deployment (``__Host-`` prefixed when the portal is on https;
    ``__Secure-`` for the session cookie when it is shared with a parent domain)."""
    if not current_app.config["SESSION_COOKIE_SECURE"]:
        return name
    return (SECURE_PREFIX if cookie_domain(name) else HOST_PREFIX) + name


def cookie_domain(name: str) -> str | None:
    """The Domain a cookie is sent with: PORTAL_SESSION_COOKIE_DOMAIN for the session cookie, else none."""
    if name != SESSION_COOKIE:
        return None
    return config_module.cookie_domain(current_app.config) or None


def trust_token() -> str | None:
    """This browser's trusted-device token, if it has one."""
    return request.cookies.get(cookie_name(TRUST_COOKIE))


def set_session_cookie(token: str | None) -> None:
    """Send a new session cookie (None: delete it) with this response."""
    g.cookies[SESSION_COOKIE] = (token, None)


def set_trust_cookie(token: str, max_age: int) -> None:
    g.cookies[TRUST_COOKIE] = (token, max_age)


def _write_cookies(response):
    secure = bool(current_app.config["SESSION_COOKIE_SECURE"])
    for base, (value, max_age) in getattr(g, "cookies", {}).items():
        name, domain = cookie_name(base), cookie_domain(base)
        if value is None:
            response.delete_cookie(name, domain=domain, httponly=True, samesite="Lax", secure=secure)
        else:
            response.set_cookie(
                name, value, max_age=max_age, domain=domain, httponly=True, samesite="Lax", secure=secure
            )
    return response
