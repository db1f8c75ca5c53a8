"""Security headers, cookie flags (§7) and CSRF on every form and htmx request."""

from __future__ import annotations

import pytest

from portal.web.guard import SESSION_COOKIE, TRUST_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

PAGES = ["/login", "/", "/settings", "/settings/security", "/settings/security/2fa", "/settings/security/devices"]


def set_cookies(response) -> dict[str, str]:
    """Set-Cookie headers of a response by cookie name."""
    return {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}


def csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def assert_page_headers(response) -> None:
    directives = csp(response)
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "HX-Request" in response.vary
    assert "no-store" in response.headers["Cache-Control"]


def test_every_page_and_fragment_has_the_security_headers(browser, user):
    browser.login(user.account, PASSWORD)
    for url in PAGES:
        for htmx in (False, True):
            response = browser.get(url, htmx=htmx)
            assert response.status_code < 500, url
            assert_page_headers(response)
    assert_page_headers(browser.get("/no-such-page"))
    assert_page_headers(browser.post("/logout", csrf=False))


def test_anonymous_redirects_and_errors_have_the_headers_too(browser):
    assert_page_headers(browser.get("/settings"))
    assert_page_headers(browser.get("/settings", htmx=True))


def test_pages_have_no_inline_script(browser, user):
    browser.login(user.account, PASSWORD)
    for url in PAGES[1:]:
        body = text(browser.get(url))
        assert "<script>" not in body and " onclick=" not in body and "<style" not in body
        assert 'src="/static/vendor/htmx.min.js"' in body


def test_static_files_may_be_cached(browser):
    response = browser.get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert "Content-Security-Policy" in response.headers


def test_session_and_csrf_cookies_are_httponly_and_lax(browser, user, totp_secret, clock):
    response = browser.get("/login")
    csrf_cookie = set_cookies(response)["portal_csrf"]
    response = browser.login(user.account, PASSWORD)
    sid = set_cookies(response)[SESSION_COOKIE]
    response = browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret), "trust": "1"})
    cookies = set_cookies(response)
    for cookie in (csrf_cookie, sid, cookies[SESSION_COOKIE], cookies[TRUST_COOKIE]):
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # http PUBLIC_URL (development)
    assert "Max-Age" not in cookies[SESSION_COOKIE] and "Expires" not in cookies[SESSION_COOKIE]  # browser session


@pytest.mark.app_config(PUBLIC_URL="https://mail2fa.xamd.edu.cn")
def test_cookies_are_secure_and_host_only_when_the_public_url_is_https(browser, user, totp_secret, clock):
    """__Host- cookies: browsers take them only Secure, for Path=/ and without Domain (no sibling host sets them)."""
    page = browser.get("/login")
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    csrf_cookie = set_cookies(page)["__Host-portal_csrf"]
    sid = set_cookies(browser.login(user.account, PASSWORD))["__Host-" + SESSION_COOKIE]
    response = browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret), "trust": "1"})
    assert location(response) == "/"  # the prefixed session cookie carried the half-open session
    cookies = set_cookies(response)
    for cookie in (csrf_cookie, sid, cookies["__Host-" + SESSION_COOKIE], cookies["__Host-" + TRUST_COOKIE]):
        assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Path=/" in cookie and "Domain=" not in cookie
    assert SESSION_COOKIE not in cookies and browser.get("/").status_code == 200
    deleted = set_cookies(browser.post("/logout"))["__Host-" + SESSION_COOKIE]
    assert "; Secure" in deleted and "Expires=Thu, 01 Jan 1970" in deleted


@pytest.mark.app_config(PUBLIC_URL="https://mail2fa.xamd.edu.cn", HSTS_SECONDS=600)
def test_hsts_max_age_is_configurable(browser):
    assert browser.get("/login").headers["Strict-Transport-Security"] == "max-age=600"


@pytest.mark.app_config(PUBLIC_URL="https://mail2fa.xamd.edu.cn", HSTS_SECONDS=0)
def test_hsts_can_be_left_to_the_proxy(browser):
    assert "Strict-Transport-Security" not in browser.get("/login").headers


def test_no_hsts_over_http(browser):
    assert "Strict-Transport-Security" not in browser.get("/login").headers


# --- CSRF -----------------------------------------------------------------------------------


def test_post_without_token_is_refused_with_an_error_page(browser, user):
    for url in ("/login", "/logout"):
        response = browser.post(url, {"account": user.account, "password": PASSWORD}, csrf=False)
        assert response.status_code == 400
        assert "页面已过期或请求来源无效" in text(response) and "<html" in text(response)
    assert browser.cookie(SESSION_COOKIE) is None


def test_forged_token_is_refused(browser, user):
    browser.get("/login")
    response = browser.post("/login", {"account": user.account, "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 400 and browser.cookie(SESSION_COOKIE) is None


def test_token_of_another_browser_is_refused(browser, new_browser, user):
    other = new_browser()
    other.get("/login")
    response = browser.post("/login", {"account": user.account, "password": PASSWORD, "csrf_token": other.csrf})
    assert response.status_code == 400 and browser.cookie(SESSION_COOKIE) is None


def test_htmx_post_without_token_gets_a_notice_in_flash(browser, totp_user):
    browser.login(totp_user.account, PASSWORD)
    for url in ("/settings/security/2fa/totp/bind", "/settings/security/devices/revoke-all", "/login/verify"):
        response = browser.post(url, {"code": "123456"}, htmx=True, csrf=False)
        assert response.status_code == 200, url
        assert response.headers["HX-Retarget"] == "#flash"
        assert response.headers["HX-Reswap"] == "innerHTML"
        assert "页面已过期或请求来源无效" in text(response)
        assert "<html" not in text(response)


def test_htmx_token_in_header_is_accepted(browser, user):
    """htmx sends the token from <body hx-headers> as X-CSRFToken, not as a form field."""
    browser.login(user.account, PASSWORD)
    browser.get("/settings/security/devices")
    response = browser.client.post(
        "/settings/security/devices/revoke-all", headers={"HX-Request": "true", "X-CSRFToken": browser.csrf}
    )
    assert response.status_code == 200 and "HX-Retarget" not in response.headers
    assert "已移除 0 台信任设备" in text(response)


def test_logout_with_token_works_and_get_does_not_log_out(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    assert browser.get("/logout").status_code == 405
    assert browser.get("/").status_code == 200
    assert location(browser.post("/logout")) == "/login"
    assert location(browser.get("/")) == "/login"
