"""GET /authz/verify (nginx auth_request), the login's rd, the shared cookie domain and trusted networks."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from portal import create_app
from portal.config import ConfigError
from portal.models import AuditEvent, LoginSession
from portal.services import accounts, policy
from portal.web import continuation
from portal.web.guard import SESSION_COOKIE
from tests.conftest import PASSWORD, make_config
from tests.views.support import PAGE, bind, complete_login, location

SECRET = "nginx-and-portal-share-this-too"
HOSTS = "webmail.mail.xamd.edu.cn, Apps.Mail.Xamd.edu.cn"
APP = "http://webmail.mail.xamd.edu.cn/?_task=mail&_mbox=INBOX"
PUBLIC = "http://127.0.0.1:8000"
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # a browser's navigation
FORWARD = {"FORWARD_AUTH_SECRET": SECRET, "FORWARD_AUTH_HOSTS": HOSTS}
forward_auth_on = pytest.mark.app_config(**FORWARD)


def ask(client, url: str | None = APP, *, secret: str | None = SECRET, accept: str | None = HTML, **extra):
    """One auth_request subrequest as nginx sends it: the browser's headers plus ours."""
    headers = {"X-Original-URL": url, "X-Forward-Auth-Secret": secret, "Accept": accept}
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return client.get("/authz/verify", headers={k: v for k, v in headers.items() if v is not None})


def rd_of(response) -> str:
    """The original URL the 401's Location carries back to the login (``rd``)."""
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{PUBLIC}/login"
    return parse_qs(target.query, strict_parsing=True)["rd"][0]


@pytest.fixture
def logged_in(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    return browser


# --- answers ------------------------------------------------------------------------------------


@forward_auth_on
def test_no_session_is_401_with_the_login_and_rd(app, browser):
    response = ask(browser.client)
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"
    assert "Remote-User" not in response.headers
    # rd is percent-encoded whole: the app's own '&' and '=' do not leak into the login's query.
    assert f"?rd={quote(APP, safe='')}" in response.headers["Location"]
    assert rd_of(response) == APP


@forward_auth_on
def test_full_session_is_200_with_the_identity(app, browser, user, totp_secret, clock):
    user.name = "张三 (计算机学院)"
    user.save()
    complete_login(browser, user.account, totp_secret, clock)
    events = AuditEvent.select().count()
    touched = LoginSession.get().last_seen_at
    response = ask(browser.client)
    assert response.status_code == 200, response.headers
    assert response.headers["Remote-User"] == response.headers["Remote-Email"] == "alice@mail.xamd.edu.cn"
    assert response.headers["Remote-Name"] == "%E5%BC%A0%E4%B8%89%20%28%E8%AE%A1%E7%AE%97%E6%9C%BA%E5%AD%A6%E9%99%A2%29"
    assert unquote(response.headers["Remote-Name"]) == "张三 (计算机学院)"  # UTF-8, percent-encoded
    assert response.headers["Cache-Control"] == "no-store" and "Location" not in response.headers
    assert AuditEvent.select().count() == events and LoginSession.get().last_seen_at == touched  # no writes


@forward_auth_on
def test_the_host_is_compared_without_port_or_case(app, logged_in):
    for url in (
        "http://webmail.mail.xamd.edu.cn:8443/x",
        "http://APPS.mail.xamd.edu.cn./",
        "https://apps.mail.xamd.edu.cn",
    ):
        assert ask(logged_in.client, url).status_code == 200, url
    anonymous = ask(logged_in.client.application.test_client(), "http://webmail.mail.xamd.edu.cn:8443/a?b=1&c=2")
    assert anonymous.status_code == 401 and rd_of(anonymous) == "http://webmail.mail.xamd.edu.cn:8443/a?b=1&c=2"


@forward_auth_on
@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "/relative/path",
        "http://evil.test/",
        "http://webmail.mail.xamd.edu.cn.evil.test/",
        "http://user@webmail.mail.xamd.edu.cn/",
        "http://webmail.mail.xamd.edu.cn:99999/",
        "ftp://webmail.mail.xamd.edu.cn/",
        "http://webmail.mail.xamd.edu.cn/a\\b",
    ],
)
def test_a_url_not_on_the_allowed_hosts_is_403(app, logged_in, url):
    response = ask(logged_in.client, url)
    assert response.status_code == 403 and "Remote-User" not in response.headers
    assert "Location" not in response.headers and response.headers["Cache-Control"] == "no-store"


@forward_auth_on
@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper()])
def test_a_missing_or_wrong_secret_is_403(app, logged_in, secret, caplog):
    with caplog.at_level(logging.WARNING):
        response = ask(logged_in.client, secret=secret)
    assert response.status_code == 403 and "Remote-User" not in response.headers
    assert "X-Forward-Auth-Secret" in caplog.text


@pytest.mark.app_config(FORWARD_AUTH_HOSTS=HOSTS)
def test_without_a_configured_secret_nothing_passes(app, logged_in, caplog):
    with caplog.at_level(logging.WARNING):
        assert ask(logged_in.client, secret="").status_code == 403
        assert ask(logged_in.client, secret="anything").status_code == 403
    assert "PORTAL_FORWARD_AUTH_SECRET is not set" in caplog.text


@forward_auth_on
def test_half_logged_in_is_401(app, browser, user, totp_secret):
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"
    response = ask(browser.client)
    assert response.status_code == 401 and rd_of(response) == APP


@forward_auth_on
@pytest.mark.parametrize(
    "headers",
    [{"X_Requested_With": "XMLHttpRequest"}, {"accept": "application/json"}, {"accept": "image/png"}],
    ids=["xhr", "json", "image"],
)
def test_xhr_and_non_html_get_a_bare_401(app, browser, headers):
    response = ask(browser.client, **({"accept": HTML} | headers))
    assert response.status_code == 401 and "Location" not in response.headers


@forward_auth_on
def test_no_accept_header_is_a_page(app, browser):
    assert "Location" in ask(browser.client, accept=None).headers


@forward_auth_on
def test_disabled_user_is_403_not_401(app, logged_in, user):
    accounts.set_disabled(user.account, True)
    assert ask(logged_in.client, X_Requested_With="XMLHttpRequest").status_code == 403
    response = ask(logged_in.client)
    assert response.status_code == 403 and "Location" not in response.headers
    denied = AuditEvent.select().where(AuditEvent.event == "forward_auth")
    assert [(e.outcome, e.detail) for e in denied] == [("denied", "disabled: webmail.mail.xamd.edu.cn")]  # pages only


@forward_auth_on
def test_forced_binding_pending_is_403(app, browser, user):
    policy.set_value("force_2fa", "all")
    assert location(browser.login(user.account, PASSWORD)) == PAGE
    response = ask(browser.client)
    assert response.status_code == 403 and "Location" not in response.headers
    assert AuditEvent.select().where(AuditEvent.event == "forward_auth").count() == 1


@forward_auth_on
def test_logout_is_401(app, logged_in):
    assert ask(logged_in.client).status_code == 200
    logged_in.post("/logout")
    assert ask(logged_in.client).status_code == 401
    assert AuditEvent.select().where(AuditEvent.event == "forward_auth").count() == 0  # 401s are not audited


@forward_auth_on
def test_a_stale_cookie_after_logout_is_401(app, browser, new_browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    copied = new_browser()
    copied.client.set_cookie(SESSION_COOKIE, browser.cookie(SESSION_COOKIE))
    assert ask(copied.client).status_code == 200
    browser.post("/logout")
    assert ask(copied.client).status_code == 401


# --- the login comes back to rd ---------------------------------------------------------------


@forward_auth_on
def test_login_returns_to_rd(app, browser, user, totp_secret, clock):
    rd = rd_of(ask(browser.client))
    browser.get("/login?rd=" + quote(rd, safe=""))
    response = complete_login_to(browser, user, totp_secret, clock)
    assert response.headers["Location"] == APP
    assert ask(browser.client).status_code == 200


@forward_auth_on
def test_login_with_a_foreign_rd_lands_on_the_welcome_page(app, browser, user, totp_secret, clock):
    browser.get("/login?rd=" + quote("http://evil.test/?_task=mail", safe=""))
    assert location(complete_login_to(browser, user, totp_secret, clock)) == "/"


@forward_auth_on
def test_after_a_forced_binding_enter_mailbox_goes_back_to_rd(app, browser, user, clock):
    policy.set_value("force_2fa", "all")
    policy.set_value("enabled_methods", "app,wechat,totp")
    browser.get("/login?rd=" + quote(APP, safe=""))
    assert location(browser.login(user.account, PASSWORD)) == PAGE
    assert ask(browser.client).status_code == 403  # binding first
    bind(browser, clock)
    assert browser.get("/login/continue").headers["Location"] == APP  # 进入邮箱
    assert ask(browser.client).status_code == 200


def complete_login_to(browser, user, secret, clock):
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"
    return browser.post("/login/verify", {"method": "totp", "code": clock.next_code(secret)})


ALLOWED = "webmail.mail.xamd.edu.cn"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/",
        "//evil.test/",
        "/\\evil.test",
        "/%5Cevil.test",
        "https:/\\evil.test",
        "https:evil.test",
        "https:///evil.test",
        f"https://{ALLOWED}.evil.test/",
        "https://evilmail.xamd.edu.cn/",
        f"https://evil.test@{ALLOWED}/",
        f"https://{ALLOWED}:x@evil.test/",
        f"https://{ALLOWED}\\@evil.test/",
        f"http://{ALLOWED}/",  # the portal is on https: no plain http
        "javascript:alert(1)",
        "JavaScript://%0aalert(1)",
        "data:text/html,hi",
        f"\thttps://{ALLOWED}/",
        f"https://{ALLOWED}/\n",
        f"https://{ALLOWED}/a b",
        f"https://{ALLOWED}/\x00",
        f"https://{ALLOWED}\u3002evil.test/",  # ideographic full stop: a dot to browsers
        "https://webmаil.mail.xamd.edu.cn/",  # Cyrillic а
        f"https://{ALLOWED}:99999/",
        f"https://{ALLOWED}:８０/",  # fullwidth digits
        "/login",
        "/settings/security/2fa",
        f"https://{ALLOWED}/" + "a" * 5000,
        "",
        None,
    ],
)
def test_open_redirect_table_refuses(app, target):
    with app.test_request_context():
        app.config.update(PUBLIC_URL="https://2fa.mail.xamd.edu.cn", FORWARD_AUTH_HOSTS=ALLOWED)
        assert continuation.safe_target(target) is None


@pytest.mark.parametrize(
    "target",
    [
        f"https://{ALLOWED}/",
        f"https://{ALLOWED}/?_task=mail&_action=show&_uid=42#x",
        f"https://{ALLOWED.upper()}./x",
        f"https://{ALLOWED}:8443/x",
        "/oauth/authorize?client_id=a&response_type=code",
    ],
)
def test_open_redirect_table_accepts(app, target):
    with app.test_request_context():
        app.config.update(PUBLIC_URL="https://2fa.mail.xamd.edu.cn", FORWARD_AUTH_HOSTS=ALLOWED)
        assert continuation.safe_target(target) == target


# --- trusted networks ----------------------------------------------------------------------------


def at(browser, address: str):
    browser.client.environ_base["REMOTE_ADDR"] = address
    return browser


@forward_auth_on
def test_trusted_network_skips_the_second_step(app, browser, user, totp_secret):
    policy.set_value("trusted_networks", "10.0.0.0/8,192.168.1.0/24")
    assert location(at(browser, "10.20.30.40").login(user.account, PASSWORD)) == "/"
    session = LoginSession.get(LoginSession.ended_at.is_null())
    assert (session.stage, session.second_step, session.verified_at) == ("full", "trusted_network", None)
    complete = AuditEvent.get(AuditEvent.event == "login_complete")
    assert (complete.detail, complete.ip) == ("trusted_network", "10.20.30.40")
    assert ask(browser.client).status_code == 200


def test_a_trusted_network_login_must_verify_before_an_app_password(app, browser, totp_user, totp_secret):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    assert location(at(browser, "10.20.30.40").login(totp_user.account, PASSWORD)) == "/"
    dialog = browser.get("/settings/security/app-passwords/new", htmx=True)
    assert "安全验证" in dialog.get_data(as_text=True) and 'name="code"' in dialog.get_data(as_text=True)
    refused = browser.post("/settings/security/app-passwords/new", {"name": "Foxmail"}, htmx=True)
    assert "data-app-password" not in refused.get_data(as_text=True)


def test_outside_the_trusted_network_the_second_step_stays(app, browser, user, totp_secret):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    assert location(at(browser, "192.0.2.7").login(user.account, PASSWORD)) == "/login/verify"


def test_admins_never_skip_by_network(app, browser, user, totp_secret):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    user.role = "admin"
    user.save()
    assert location(at(browser, "10.20.30.40").login(user.account, PASSWORD)) == "/login/verify"


def test_a_locked_second_step_is_not_skipped_by_network(app, browser, new_browser, user, totp_secret, clock):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    outside = at(new_browser(), "192.0.2.7")
    assert location(outside.login(user.account, PASSWORD)) == "/login/verify"
    for _ in range(10):  # someone off campus guesses codes until the account's second step locks
        outside.post("/login/verify", {"method": "totp", "code": clock.wrong_code(totp_secret)})
    assert location(at(browser, "10.20.30.40").login(user.account, PASSWORD)) == "/login/verify"
    assert AuditEvent.select().where(AuditEvent.detail == "trusted_network").count() == 0


def test_forced_binding_comes_first_on_a_trusted_network(app, browser, user):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    policy.set_value("force_2fa", "all")
    assert location(at(browser, "10.20.30.40").login(user.account, PASSWORD)) == PAGE


def test_a_spoofed_forwarded_for_is_ignored_without_trusted_proxies(app, browser, user, totp_secret):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    at(browser, "192.0.2.7")
    response = browser.post("/login", {"account": user.account, "password": PASSWORD}, X_Forwarded_For="10.20.30.40")
    assert location(response) == "/login/verify"
    assert LoginSession.get(LoginSession.ended_at.is_null()).ip == "192.0.2.7"


@pytest.mark.app_config(TRUSTED_PROXIES=1)
def test_the_proxy_hop_gives_the_client_address(app, browser, user, totp_secret):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    at(browser, "127.0.0.1")
    # One trusted hop: its X-Forwarded-For's last entry is the client; an earlier, client-written one is not.
    response = browser.post(
        "/login", {"account": user.account, "password": PASSWORD}, X_Forwarded_For="10.9.9.9, 192.0.2.7"
    )
    assert location(response) == "/login/verify"
    browser.post("/logout")
    response = browser.post("/login", {"account": user.account, "password": PASSWORD}, X_Forwarded_For="10.20.30.40")
    assert location(response) == "/"


# --- the cookie's domain ---------------------------------------------------------------------------


def set_cookie_of(response, name: str) -> str:
    cookies = [v for v in response.headers.getlist("Set-Cookie") if v.startswith(name + "=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


@pytest.mark.app_config(
    PUBLIC_URL="https://login.mail.xamd.edu.cn",
    SHARED_COOKIE_DOMAIN="mail.xamd.edu.cn",
    WTF_CSRF_ENABLED=False,
    **FORWARD,
)
def test_a_shared_cookie_domain_makes_the_session_cookie_secure_prefixed(app, user):
    client = app.test_client()
    response = client.post(
        "/login", data={"account": user.account, "password": PASSWORD}, base_url="https://login.mail.xamd.edu.cn"
    )
    cookie = set_cookie_of(response, "__Secure-portal_sid")
    assert "Domain=mail.xamd.edu.cn" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert not any(v.startswith("__Host-portal_sid") for v in response.headers.getlist("Set-Cookie"))
    # A sibling host under the domain gets it too, and the portal knows it by that name.
    sibling = {"base_url": "https://webmail.mail.xamd.edu.cn", "headers": {"X-Forward-Auth-Secret": SECRET}}
    sibling["headers"]["X-Original-URL"] = "https://webmail.mail.xamd.edu.cn/"
    assert client.get("/authz/verify", **sibling).status_code == 200
    assert client.get("/", base_url="https://login.mail.xamd.edu.cn").status_code == 200
    logout = client.post("/logout", base_url="https://login.mail.xamd.edu.cn")
    assert "Domain=mail.xamd.edu.cn" in set_cookie_of(logout, "__Secure-portal_sid")  # deleted where it was set
    assert client.get("/authz/verify", **sibling).status_code == 401


@pytest.mark.app_config(PUBLIC_URL="https://login.mail.xamd.edu.cn", WTF_CSRF_ENABLED=False)
def test_by_default_the_session_cookie_is_host_only(app, user):
    client = app.test_client()
    response = client.post(
        "/login", data={"account": user.account, "password": PASSWORD}, base_url="https://login.mail.xamd.edu.cn"
    )
    cookie = set_cookie_of(response, "__Host-portal_sid")
    assert "Domain=" not in cookie and "Secure" in cookie


@pytest.mark.parametrize(
    "domain", ["example.edu.cn", "xamd.edu", "cn", "127.0.0.1", "mail.xamd.edu.cn:443", "*.xamd.edu.cn"]
)
def test_a_cookie_domain_that_is_not_a_parent_of_the_portal_is_refused(database_url, domain):
    config = make_config(database_url, PUBLIC_URL="https://login.mail.xamd.edu.cn", SHARED_COOKIE_DOMAIN=domain)
    with pytest.raises(ConfigError, match="PORTAL_SESSION_COOKIE_DOMAIN"):
        create_app(config)


@pytest.mark.parametrize("domain", ["mail.xamd.edu.cn", ".Mail.Xamd.edu.cn", "xamd.edu.cn", "login.mail.xamd.edu.cn"])
def test_a_parent_cookie_domain_is_accepted(database_url, domain):
    create_app(make_config(database_url, PUBLIC_URL="https://login.mail.xamd.edu.cn", SHARED_COOKIE_DOMAIN=domain))


@pytest.mark.parametrize("hosts", ["https://webmail.mail.xamd.edu.cn", "webmail.mail.xamd.edu.cn:443", "a/b"])
def test_forward_auth_hosts_must_be_bare_host_names(database_url, hosts):
    with pytest.raises(ConfigError, match="PORTAL_FORWARD_AUTH_HOSTS"):
        create_app(make_config(database_url, FORWARD_AUTH_HOSTS=hosts))
