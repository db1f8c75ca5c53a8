"""nginx auth_http: configuration parsing, who may ask, and the answer headers (service level)."""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

import pytest

from portal import config as config_module
from portal import create_app
from portal.config import ConfigError
from portal.services import app_passwords, mail_auth
from portal.services.mail_auth import AuthRequest
from tests.conftest import PASSWORD, make_config

BACKENDS = "imap=10.0.0.1:143,pop3=10.0.0.2:110,smtp=[2001:db8::25]:25"


def request(user: str, password: str, protocol: str = "imap", **fields) -> AuthRequest:
    values = {"method": "plain", "attempt": "1", "client_ip": "198.51.100.9"} | fields
    return AuthRequest(user=quote(user, safe="@"), password=quote(password, safe=""), protocol=protocol, **values)


# --- configuration ----------------------------------------------------------------------------


def test_parse_mail_backends():
    assert config_module.parse_mail_backends(BACKENDS) == {
        "imap": ("10.0.0.1", 143),
        "pop3": ("10.0.0.2", 110),
        "smtp": ("2001:db8::25", 25),
    }
    assert config_module.parse_mail_backends(" IMAP = mail.internal:1143 ,") == {"imap": ("mail.internal", 1143)}
    assert config_module.parse_mail_backends("") == {}


@pytest.mark.parametrize("raw", ["imap=10.0.0.1", "imap=:143", "imap=10.0.0.1:0", "imap=h:70000", "lmtp=h:24", "h:143"])
def test_malformed_backends_are_refused(raw):
    with pytest.raises(ConfigError):
        config_module.parse_mail_backends(raw)


def test_parse_networks():
    networks = config_module.parse_networks("127.0.0.1, 10.0.0.0/8 ,::1,")
    assert networks == [
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    with pytest.raises(ConfigError):
        config_module.parse_networks("10.0.0.0/33")


@pytest.mark.parametrize(
    "overrides",
    [
        {"MAIL_BACKENDS": "imap=10.0.0.1"},
        {"MAIL_AUTH_ALLOW": "not-an-address"},
        {"MAIL_BACKEND_PASSWORD": "line\nbreak"},
        {"MAIL_BACKEND_PASSWORD": " padded"},
        {"MAIL_BACKEND_PASSWORD": "密码"},
    ],
)
def test_the_app_refuses_to_start_with_bad_mail_settings(database_url, overrides):
    with pytest.raises(ConfigError):
        create_app(make_config(database_url, **overrides))


def test_new_keys_are_read_from_the_environment():
    environ = {"PORTAL_MAIL_AUTH_ALLOW": "10.0.0.5", "PORTAL_MAIL_BACKEND_PASSWORD": "master-secret"}
    loaded = config_module.load(environ=environ)
    assert loaded["MAIL_AUTH_ALLOW"] == "10.0.0.5" and loaded["MAIL_BACKEND_PASSWORD"] == "master-secret"


# --- who may ask ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "allowed"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True), ("192.0.2.1", False)],
)
def test_without_settings_only_loopback_may_ask(ctx, addr, allowed):
    assert mail_auth.caller_allowed(addr, None) is allowed
    assert mail_auth.caller_allowed(None, None) is False


@pytest.mark.config(MAIL_AUTH_SECRET="s3cret-shared-with-nginx")
def test_the_secret_must_match(ctx):
    assert mail_auth.caller_allowed("192.0.2.1", "s3cret-shared-with-nginx")
    for wrong in (None, "", "s3cret", "s3cret-shared-with-nginx ", "ß3cret-shared-with-nginx"):
        assert not mail_auth.caller_allowed("127.0.0.1", wrong)


@pytest.mark.config(MAIL_AUTH_ALLOW="10.1.0.0/16, 2001:db8::/32")
def test_the_allow_list_replaces_loopback(ctx):
    assert mail_auth.caller_allowed("10.1.2.3", None)
    assert mail_auth.caller_allowed("2001:db8::7", None)
    assert not mail_auth.caller_allowed("10.2.0.1", None)
    assert not mail_auth.caller_allowed("127.0.0.1", None)


@pytest.mark.config(MAIL_AUTH_ALLOW="10.1.0.0/16", MAIL_AUTH_SECRET="s3cret")
def test_secret_and_allow_list_are_both_required(ctx):
    assert mail_auth.caller_allowed("10.1.2.3", "s3cret")
    assert not mail_auth.caller_allowed("10.1.2.3", "wrong")
    assert not mail_auth.caller_allowed("10.9.9.9", "s3cret")


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.config(MAIL_BACKENDS=BACKENDS)
@pytest.mark.parametrize(
    ("protocol", "server", "port"),
    [("imap", "10.0.0.1", "143"), ("pop3", "10.0.0.2", "110"), ("smtp", "2001:db8::25", "25")],
)
def test_good_login_names_the_backend_of_the_protocol(user, protocol, server, port):
    headers = mail_auth.answer(request(user.account, PASSWORD, protocol))
    assert headers == {"Auth-Status": "OK", "Auth-Server": server, "Auth-Port": port}


@pytest.mark.config(MAIL_BACKENDS="imap=localhost:1143")
def test_backend_host_names_are_resolved_to_an_address(user):
    headers = mail_auth.answer(request(user.account, PASSWORD))
    assert ipaddress.ip_address(headers["Auth-Server"]).is_loopback and headers["Auth-Port"] == "1143"


@pytest.mark.config(MAIL_BACKENDS=BACKENDS, MAIL_BACKEND_PASSWORD="master-secret")
def test_backend_password_replaces_the_users(user):
    headers = mail_auth.answer(request(user.account.upper(), PASSWORD))
    assert headers["Auth-Pass"] == "master-secret" and headers["Auth-User"] == user.account


@pytest.mark.config(MAIL_BACKENDS="pop3=10.0.0.2:110")
def test_a_protocol_without_backend_is_a_temporary_failure(user):
    headers = mail_auth.answer(request(user.account, PASSWORD, "imap"))
    assert headers["Auth-Status"] == mail_auth.TEMPORARY and headers["Auth-Wait"] == "3"


def test_failures_carry_a_wait_and_for_smtp_a_code(user):
    assert mail_auth.answer(request(user.account, "wrong password!")) == {
        "Auth-Status": "Invalid login or password",
        "Auth-Wait": "3",
    }
    smtp = mail_auth.answer(request(user.account, "wrong password!", "smtp"))
    assert smtp["Auth-Error-Code"] == "535 5.7.8"


def test_after_ten_attempts_nginx_is_told_to_close(user):
    headers = mail_auth.answer(request(user.account, "wrong password!", attempt="10"))
    assert "Auth-Wait" not in headers and headers["Auth-Status"] == "Invalid login or password"


def test_app_password_hint_for_the_main_password_of_a_2fa_user(user, totp_secret):
    headers = mail_auth.answer(request(user.account, PASSWORD))
    assert headers["Auth-Status"] == app_passwords.APP_PASSWORD_REQUIRED


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=2, THROTTLE_WINDOW_MINUTES=1440)
def test_throttled_logins_wait_longer(user):
    for _ in range(2):
        mail_auth.answer(request(user.account, "wrong password!", "smtp"))
    headers = mail_auth.answer(request(user.account, PASSWORD, "smtp"))
    assert headers["Auth-Status"] == app_passwords.THROTTLED
    assert int(headers["Auth-Wait"]) > mail_auth.AUTH_WAIT and headers["Auth-Error-Code"] == "454 4.7.0"


@pytest.mark.parametrize("method", ["apop", "cram-md5", "external", "none", ""])
def test_only_plaintext_methods(user, method):
    headers = mail_auth.answer(request(user.account, PASSWORD, method=method))
    assert headers["Auth-Status"] == mail_auth.UNSUPPORTED_METHOD


@pytest.mark.config(MAIL_BACKENDS=BACKENDS)
def test_url_encoded_credentials_are_decoded(ctx):
    from portal.services import accounts

    password = "p@ss w%rd+密码:&?=/\\\"'#"
    accounts.create("carol@mail.xamd.edu.cn", password)
    assert mail_auth.answer(request("carol@mail.xamd.edu.cn", password))["Auth-Status"] == "OK"
    raw = AuthRequest("login", "carol@mail.xamd.edu.cn", quote(password, safe=""), "pop3", "1", "198.51.100.9")
    assert mail_auth.answer(raw)["Auth-Status"] == "OK"
    # nginx escapes only "%", space and control characters; UTF-8 arrives as raw bytes (latin-1 in WSGI)
    nginx_style = password.replace("%", "%25").replace(" ", "%20").encode().decode("latin-1")
    raw = AuthRequest("plain", "carol@mail.xamd.edu.cn", nginx_style, "smtp", "1", "198.51.100.9")
    assert mail_auth.answer(raw)["Auth-Status"] == "OK"
    undecoded = AuthRequest("plain", "carol@mail.xamd.edu.cn", password, "imap", "1", "")
    assert mail_auth.answer(undecoded)["Auth-Status"] != "OK"  # "%rd" is not what was meant


@pytest.mark.parametrize("user_header", ["%ff%fe", "alice%00@mail.xamd.edu.cn", "%0d%0aInjected: 1"])
def test_undecodable_or_control_characters_are_refused(user, user_header):
    headers = mail_auth.answer(AuthRequest("plain", user_header, quote(PASSWORD), "imap", "1", ""))
    assert headers["Auth-Status"] == "Invalid login or password"


@pytest.mark.parametrize(("raw", "stored"), [("203.0.113.5", "203.0.113.5"), ("bogus", ""), ("", "")])
def test_client_ip_is_validated(user, raw, stored):
    mail_auth.answer(request(user.account, "wrong password!", client_ip=raw))
    from portal.models import AuditEvent

    assert AuditEvent.select().where(AuditEvent.event == "mail_login").get().ip == stored
