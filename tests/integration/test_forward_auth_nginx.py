"""Forward auth end to end: a real nginx (deploy/nginx/*.conf, rendered) in front of the live portal and
a header-echo app, over TLS, with a cookie-keeping HTTP client as the browser.

Layout (the default, host-only cookie): one host name, https://127.0.0.1:PORT, serves the portal at
/ and the protected app under /campus-app/; the portal's __Host-portal_sid cookie therefore reaches
nginx's auth subrequest for the app. PORTAL_TRUSTED_PROXIES=1: nginx is the one hop in front.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pyotp
import pytest
import requests
import trustme

from portal import crypto
from portal.models import Factor, User
from portal.services import accounts
from tests.conftest import PASSWORD
from tests.helpers import CSRF_RE, free_port
from tests.integration.conftest import print_logs_if_failed
from tests.integration.http_nginx import APP_PATH, EchoApp, ForwardAuthNginx, start_forward_auth_nginx
from tests.integration.portal_server import LivePortal
from tests.integration.procs import HOST

ACCOUNT = "zhangsan@mail.xamd.edu.cn"
NAME = "张三"
TIMEOUT = 10
XHR = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"}
PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class Stack:
    def __init__(self, nginx: ForwardAuthNginx, portal: LivePortal, app: EchoApp, ca: str):
        self.nginx, self.portal, self.app, self.ca = nginx, portal, app, ca
        self.secret = pyotp.random_base32()
        portal.run(lambda: self._user())

    def _user(self) -> None:
        user = accounts.create(ACCOUNT, PASSWORD, name=NAME)
        Factor.create(user=user, method="totp", secret=crypto.encrypt(self.secret))

    def browser(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no REQUESTS_CA_BUNDLE (it would win over verify) and no proxies
        session.verify = self.ca
        session.headers.update(PAGE)
        return session

    def get(self, browser: requests.Session, path: str, **headers) -> requests.Response:
        return browser.get(self.nginx.url + path, headers=headers, allow_redirects=False, timeout=TIMEOUT)

    def post_form(self, browser: requests.Session, path: str, form: dict) -> requests.Response:
        """A form post as the browser sends it: the page's CSRF token, and a same-origin Referer."""
        page = self.get(browser, path)
        form["csrf_token"] = CSRF_RE.search(page.text).group(1)
        headers = {"Referer": self.nginx.url + path}
        return browser.post(self.nginx.url + path, data=form, headers=headers, allow_redirects=False, timeout=TIMEOUT)

    def log_in(self, browser: requests.Session) -> requests.Response:
        """Password, then a 第三方 OTP code; returns the second step's redirect."""
        response = self.post_form(browser, "/login", {"account": ACCOUNT, "password": PASSWORD})
        assert response.status_code == 302 and response.headers["Location"] == "/login/verify", response.text
        code = pyotp.TOTP(self.secret).now()  # one login per test: each has its own database
        response = self.post_form(browser, "/login/verify", {"method": "totp", "code": code})
        assert response.status_code == 302, response.text
        return response


@pytest.fixture
def stack(request, tmp_path) -> Iterator[Stack]:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    cert_path, key_path, ca_path = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    secret = secrets.token_hex(16)
    port = free_port()
    portal = LivePortal(
        tmp_path / "portal.db",
        PUBLIC_URL=f"https://{HOST}:{port}",
        TRUSTED_PROXIES=1,
        FORWARD_AUTH_SECRET=secret,
        FORWARD_AUTH_HOSTS=HOST,
    )
    app = EchoApp()
    nginx = None
    try:
        nginx = start_forward_auth_nginx(
            tmp_path / "nginx",
            port=port,
            portal_port=portal.port,
            app_port=app.port,
            secret=secret,
            cert=cert_path,
            key=key_path,
        )
        yield Stack(nginx, portal, app, str(ca_path))
    finally:
        if nginx is not None:
            nginx.stop()
            print_logs_if_failed(request, nginx.error_log, nginx.access_log)
        app.stop()
        portal.stop()
    assert not portal.requests.server_errors(), f"portal answered 5xx: {portal.requests.server_errors()}"


def verify_calls(portal: LivePortal) -> list[dict]:
    with portal.requests.lock:
        return [entry for entry in portal.requests.entries if entry["path"] == "/authz/verify"]


def headers_seen(entry: dict) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in entry["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


def test_no_session_redirects_to_the_portal_login_with_rd(stack):
    browser = stack.browser()
    path = f"{APP_PATH}inbox?folder=INBOX&page=2"
    response = stack.get(browser, path)
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{stack.nginx.url}/login"
    assert parse_qs(target.query) == {"rd": [stack.nginx.url + path]}
    assert f"rd={quote(stack.nginx.url + path, safe='')}" in response.headers["Location"]
    assert stack.app.requests == [] and [c["status"] for c in verify_calls(stack.portal)] == [401]


def test_after_the_login_the_app_sees_the_user_and_never_a_spoofed_one(stack):
    browser = stack.browser()
    original = f"{stack.nginx.url}{APP_PATH}inbox?folder=INBOX&page=2"
    login_page = stack.get(browser, urlsplit(original).path + "?" + urlsplit(original).query)
    assert stack.get(browser, login_page.headers["Location"].removeprefix(stack.nginx.url)).status_code == 200
    assert browser.cookies.get("__Host-portal_sid") is None  # nothing yet: the login page only remembers rd
    response = stack.log_in(browser)
    assert response.headers["Location"] == original  # back to the app, query string intact
    assert browser.cookies.get("__Host-portal_sid")

    spoofed = {"Remote-User": "admin@mail.xamd.edu.cn", "X-Forwarded-User": "admin", "Remote-Groups": "admins"}
    page = stack.get(browser, urlsplit(original).path + "?" + urlsplit(original).query, **spoofed)
    assert page.status_code == 200, page.text
    seen = headers_seen(page.json())
    assert seen["remote-user"] == [ACCOUNT] and seen["remote-email"] == [ACCOUNT]
    assert [unquote(v) for v in seen["remote-name"]] == [NAME]
    assert "x-forwarded-user" not in seen and "remote-groups" not in seen
    assert page.json()["path"] == "/campus-app/inbox?folder=INBOX&page=2"

    # A form post reaches the app with its body (only nginx's subrequest goes without one).
    posted = browser.post(
        stack.nginx.url + APP_PATH + "send",
        data={"to": "lisi@mail.xamd.edu.cn"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert posted.status_code == 200 and posted.json()["body"] == "to=lisi%40mail.xamd.edu.cn"
    assert stack.get(browser, APP_PATH, **XHR).status_code == 200

    csrf = CSRF_RE.search(stack.get(browser, "/").text).group(1)
    browser.post(
        stack.nginx.url + "/logout",
        data={"csrf_token": csrf},
        headers={"Referer": stack.nginx.url + "/"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert stack.get(browser, APP_PATH).status_code == 302


def test_a_spoofed_remote_user_without_a_session_gets_nowhere(stack):
    browser = stack.browser()
    response = stack.get(browser, APP_PATH, **{"Remote-User": ACCOUNT, "X-Forwarded-For": "10.0.0.1"})
    assert response.status_code == 302 and stack.app.requests == []


def test_an_xhr_gets_401_not_a_redirect(stack):
    response = stack.get(stack.browser(), APP_PATH + "?_task=mail&_action=refresh", **XHR)
    assert response.status_code == 401 and "Location" not in response.headers
    assert stack.app.requests == []


def test_rd_to_a_foreign_host_is_not_followed(stack):
    browser = stack.browser()
    assert stack.get(browser, "/login?rd=" + quote("https://evil.test/steal", safe="")).status_code == 200
    assert stack.log_in(browser).headers["Location"] == "/"  # the 欢迎页
    welcome = stack.get(browser, "/")
    assert welcome.status_code == 200 and "个人设置" in welcome.text


def test_the_verify_endpoints_are_not_reachable_from_outside(stack):
    browser = stack.browser()
    assert stack.get(browser, "/_portal/verify").status_code == 404  # internal
    assert stack.get(browser, "/authz/verify").status_code == 404
    assert verify_calls(stack.portal) == []


def test_a_disabled_user_gets_403(stack):
    browser = stack.browser()
    stack.log_in(browser)
    assert stack.get(browser, APP_PATH).status_code == 200
    stack.portal.run(lambda: accounts.set_disabled(ACCOUNT, True))
    assert stack.get(browser, APP_PATH).status_code == 403
    assert stack.portal.run(lambda: User.by_account(ACCOUNT).disabled)
