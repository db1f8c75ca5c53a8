"""Invariant 1 (and §7 "never a 3xx to htmx"): what each login stage can reach.

Every rule of ``app.url_map`` is requested with every method it accepts, so a route added later is
covered without touching this file, and is denied by default. Reaching a route before the second
step is a security decision: such endpoints are listed here explicitly.
"""

from __future__ import annotations

import pytest
from werkzeug.routing import AnyConverter, FloatConverter, IntegerConverter, PathConverter, UUIDConverter

from portal.models import LoginSession
from portal.services import accounts, policy
from portal.web import guard
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import REDIRECTS, location

PUBLIC = {
    "auth.login_form",
    "auth.login_submit",
    "auth.logout",
    "home.healthz",
    "static",
    "scan.wechat_ticket",  # a WeChat QR URL opened in a browser: "请使用微信扫一扫"
    "pwa.index",  # the 邮箱安全 App (/app): keys on the phone, requests signed, no session
    "pwa.enroll",  # the bind QR's URL opens the App
    "pwa.ticket",  # a login QR's URL opens the App
    "pwa.manifest",
    "pwa.service_worker",
    "oidc.authorize",  # checks the request, then sends the browser through /login (both steps) and back
    "oidc.logout",  # RP-initiated logout: ends a session if there is one
    "language.choose",  # the footer's 中文 / English switch, before the login too (a cookie)
}
DEV_ONLY_BLUEPRINTS = {"simulators"}  # PORTAL_DEV_SIMULATORS, which production refuses: public by design
SECOND_STEP = {
    "auth.verify_form",
    "auth.verify_submit",
    "auth.verify_scan_poll",
    "auth.verify_send_code",
    "auth.verify_push",
}
BINDING = {
    "security.twofa",
    "security.bind_form",
    "security.bind_submit",
    "security.bind_send",
    "security.scan_poll",
    "security.change_by_temporary_code",  # 修改 after a 临时访问码 login; refused (a message) in any other session
    "security.bind_later_post",  # 稍后绑定: lets in only with the policy's snoozes left (test_bind_later)
}

# Plausible values for URL parameters by name; any other parameter gets one by converter.
PLAUSIBLE = {"method": "totp", "action": "change", "device_id": 1, "filename": "css/app.css"}
FORM = {"code": "123456", "method": "totp", "via": "totp", "enrollment": "1", "trust": "1"}
SWEPT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _value(rule, name: str):
    if name in PLAUSIBLE:
        return PLAUSIBLE[name]
    converter = rule._converters[name]
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    if isinstance(converter, IntegerConverter):
        return 1
    if isinstance(converter, FloatConverter):
        return 1.5
    if isinstance(converter, UUIDConverter):
        return "12345678-1234-5678-1234-567812345678"
    if isinstance(converter, PathConverter):
        return "a/b"
    return "plausible-value"


def all_requests(app):
    """(endpoint, HTTP method, URL) for every rule and every method it accepts."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        url = rule.build({name: _value(rule, name) for name in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods & set(SWEPT_METHODS)):
            assert adapter.match(url, method)[0] == rule.endpoint, f"no plausible URL for {rule}: add to PLAUSIBLE"
            yield rule.endpoint, method, url


def is_exempt(endpoint: str) -> bool:
    """Blueprints with their own authentication (JSON APIs, mail servers) are outside the guard."""
    return endpoint.rpartition(".")[0] in guard._exempt_blueprints  # the guard's own list


def send(browser, method: str, url: str, htmx: bool):
    if method == "GET":
        return browser.get(url, htmx=htmx)
    headers = {"HX-Request": "true"} if htmx else {}
    form = {**FORM, "csrf_token": browser.csrf}
    return browser.client.open(url, method=method, data=form, headers=headers)


def assert_sent_to(response, target: str, htmx: bool, what: str) -> None:
    if htmx:
        assert response.status_code == 200, what
        assert response.headers.get("HX-Redirect") == target, what
        assert text(response) == "", what
    else:
        assert response.status_code in REDIRECTS, f"{what}: {response.status_code}"
        assert location(response) == target, what


def sweep(app, browser, allowed: set[str], target: str, htmx: bool) -> int:
    """Request every route; all but ``allowed`` (and exempt APIs) must send the browser to ``target``."""
    checked = 0
    for endpoint, method, url in all_requests(app):
        if endpoint in allowed or is_exempt(endpoint) or endpoint.partition(".")[0] in DEV_ONLY_BLUEPRINTS:
            continue
        response = send(browser, method, url, htmx)
        assert_sent_to(response, target, htmx, f"{method} {url} ({endpoint})")
        checked += 1
    return checked


def expected_routes_exist(app) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert PUBLIC | SECOND_STEP | BINDING <= endpoints  # the lists above are not stale
    assert {"home.welcome", "security.verify_form", "devices.index"} <= endpoints


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_anonymous_reaches_only_public_routes(app, browser, htmx):
    expected_routes_exist(app)
    browser.get("/login")  # CSRF token, so that POSTs are refused by the guard, not by CSRF
    assert sweep(app, browser, PUBLIC, "/login", htmx) >= 8


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_half_logged_in_session_reaches_only_the_second_step(app, browser, user, totp_secret, htmx):
    response = browser.login(user.account, PASSWORD)
    assert location(response) == "/login/verify"
    sid = browser.cookie(guard.SESSION_COOKIE)

    assert sweep(app, browser, PUBLIC | SECOND_STEP, "/login/verify", htmx) >= 8

    # the sweep neither completed nor ended the half-open session
    assert browser.cookie(guard.SESSION_COOKIE) == sid
    assert LoginSession.get(LoginSession.user == user).stage == "second_factor"
    page = browser.get("/login/verify")
    assert page.status_code == 200 and "二次验证" in text(page)


@pytest.fixture(params=["listed", "admin"])
def forced_user(request, user):
    """A user who must bind before entering: listed under force_2fa=listed, or an admin."""
    policy.set_value("enabled_methods", "app,wechat,totp")
    if request.param == "listed":
        policy.set_value("force_2fa", "listed")
        return accounts.set_policy(user.account, force=True)
    return accounts.create("root@mail.xamd.edu.cn", PASSWORD, name="管理员", admin=True)


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_forced_binding_session_reaches_only_the_binding_pages(app, browser, forced_user, htmx):
    response = browser.login(forced_user.account, PASSWORD)
    assert location(response) == "/settings/security/2fa"

    assert sweep(app, browser, PUBLIC | BINDING, "/settings/security/2fa", htmx) >= 8

    assert LoginSession.get(LoginSession.user == forced_user).stage == "binding"
    assert browser.get("/settings/security/2fa").status_code == 200
    assert browser.get("/settings/security/2fa/totp/bind", htmx=True).status_code == 200


def test_exempt_apis_ignore_the_web_session(app, browser, new_browser, user, totp_secret):
    """Routes outside the guard must answer a half-logged-in browser exactly as an anonymous one."""
    browser.login(user.account, PASSWORD)
    anonymous = new_browser()
    anonymous.get("/login")
    for endpoint, method, url in all_requests(app):
        if not is_exempt(endpoint):
            continue
        with_session = send(browser, method, url, htmx=False)
        without = send(anonymous, method, url, htmx=False)
        assert with_session.status_code == without.status_code, f"{method} {url}"
        assert with_session.status_code < 500, f"{method} {url}"


def test_login_steps_answer_htmx_without_a_3xx(browser, user, totp_secret, clock):
    """Login, the second step and logout asked by htmx navigate with HX-Redirect, never a 3xx."""
    browser.get("/login")
    response = browser.post("/login", {"account": user.account, "password": PASSWORD}, htmx=True)
    assert_sent_to(response, "/login/verify", htmx=True, what="POST /login")
    response = browser.get("/login", htmx=True)
    assert_sent_to(response, "/login/verify", htmx=True, what="GET /login")
    assert browser.get("/login").headers["Location"] == "/login/verify"  # plain navigation: a 302
    response = browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)}, htmx=True)
    assert_sent_to(response, "/", htmx=True, what="POST /login/verify")
    response = browser.post("/logout", htmx=True)
    assert_sent_to(response, "/login", htmx=True, what="POST /logout")
    assert location(browser.get("/")) == "/login"
