"""GET /mail/auth, nginx's mail auth_http protocol, through the test client (headers in, headers out)."""

from __future__ import annotations

from urllib.parse import quote

import peewee
import pytest

from portal.models import AuditEvent, ThrottleCounter
from portal.services import accounts, app_passwords
from portal.services.client import Client
from tests.conftest import PASSWORD

URL = "/mail/auth"
BACKENDS = "imap=192.0.2.143:143,pop3=192.0.2.110:110,smtp=192.0.2.25:25"
SECRET = "nginx-and-portal-share-this"
NGINX = "10.20.30.40"


def ask(app, user: str, password: str, protocol: str = "imap", *, remote: str = "127.0.0.1", **extra):
    """One auth_http request as nginx sends it (user and password URL-encoded)."""
    headers = {
        "Auth-Method": "plain",
        "Auth-User": quote(user, safe="@"),
        "Auth-Pass": quote(password, safe=""),
        "Auth-Protocol": protocol,
        "Auth-Login-Attempt": "1",
        "Client-IP": "198.51.100.77",
        "Client-Host": "[UNAVAILABLE]",
    }
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return app.test_client().get(URL, headers=headers, environ_base={"REMOTE_ADDR": remote})


@pytest.fixture
def plaintext(user) -> str:
    return app_passwords.create(user, "Foxmail", Client())[1]


# --- who may ask ------------------------------------------------------------------------------


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS)
def test_loopback_may_ask_when_nothing_is_configured(app, user):
    response = ask(app, user.account, PASSWORD)
    assert response.status_code == 200 and response.headers["Auth-Status"] == "OK"


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS)
def test_other_callers_are_refused_before_any_check(app, user):
    response = ask(app, user.account, PASSWORD, remote="192.0.2.99")
    assert response.status_code == 403 and "Auth-Status" not in response.headers
    assert (
        ThrottleCounter.select().count() == 0
        and AuditEvent.select().where(AuditEvent.event == "mail_login").count() == 0
    )


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS, MAIL_AUTH_SECRET=SECRET)
@pytest.mark.parametrize(
    ("secret", "remote", "status"),
    [
        (SECRET, NGINX, 200),
        (SECRET, "127.0.0.1", 200),
        (None, "127.0.0.1", 403),
        ("wrong", NGINX, 403),
        ("", NGINX, 403),
    ],
)
def test_the_secret_header(app, user, secret, remote, status):
    extra = {} if secret is None else {"X-Mail-Auth-Secret": secret}
    response = ask(app, user.account, PASSWORD, remote=remote, **extra)
    assert response.status_code == status
    assert (response.headers.get("Auth-Status") == "OK") is (status == 200)


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS, MAIL_AUTH_ALLOW=f"{NGINX}, 10.99.0.0/16")
@pytest.mark.parametrize(
    ("remote", "status"), [(NGINX, 200), ("10.99.1.2", 200), ("127.0.0.1", 403), ("10.20.30.41", 403)]
)
def test_the_allow_list(app, user, remote, status):
    assert ask(app, user.account, PASSWORD, remote=remote).status_code == status


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS, MAIL_AUTH_ALLOW=NGINX, MAIL_AUTH_SECRET=SECRET)
def test_secret_and_allow_list_together(app, user):
    assert ask(app, user.account, PASSWORD, remote=NGINX, X_Mail_Auth_Secret=SECRET).status_code == 200
    assert ask(app, user.account, PASSWORD, remote="10.0.0.1", X_Mail_Auth_Secret=SECRET).status_code == 403
    assert ask(app, user.account, PASSWORD, remote=NGINX, X_Mail_Auth_Secret="nope").status_code == 403


def test_the_web_session_and_csrf_do_not_apply(app, browser, user):
    browser.login(user.account, PASSWORD)
    response = browser.get(URL)  # a browser, with a session cookie, from loopback, without auth headers
    assert response.status_code == 200 and response.headers["Auth-Status"] not in ("", "OK")
    assert app.test_client().post(URL).status_code == 405


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS)
@pytest.mark.parametrize(
    ("protocol", "server", "port"),
    [("imap", "192.0.2.143", "143"), ("pop3", "192.0.2.110", "110"), ("smtp", "192.0.2.25", "25")],
)
def test_backend_per_protocol(app, user, totp_secret, plaintext, protocol, server, port):
    response = ask(app, user.account, plaintext, protocol)
    assert response.headers["Auth-Status"] == "OK"
    assert (response.headers["Auth-Server"], response.headers["Auth-Port"]) == (server, port)
    assert "Auth-Pass" not in response.headers and "Auth-Wait" not in response.headers


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS, MAIL_BACKEND_PASSWORD="backend-master-password")
def test_auth_pass_substitution(app, user, totp_secret, plaintext):
    response = ask(app, user.account, plaintext)
    assert response.headers["Auth-Pass"] == "backend-master-password"
    assert response.headers["Auth-User"] == user.account
    refused = ask(app, user.account, "wrong password!")
    assert "Auth-Pass" not in refused.headers  # never handed out for a refused login


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS)
def test_url_encoded_password_with_special_characters(app, ctx):
    password = "p@ss w%rd+密码:&?=/\\\"'#!"
    accounts.create("carol@mail.xamd.edu.cn", password)
    assert ask(app, "carol@mail.xamd.edu.cn", password).headers["Auth-Status"] == "OK"
    # nginx escapes "%", spaces and control characters; other bytes (UTF-8) arrive as they are.
    escaped = password.replace("%", "%25").replace(" ", "%20").encode().decode("latin-1")
    client = app.test_client()
    response = client.get(
        URL,
        headers={
            "Auth-Method": "login",
            "Auth-User": "carol@mail.xamd.edu.cn",
            "Auth-Pass": escaped,
            "Auth-Protocol": "pop3",
        },
    )
    assert response.headers["Auth-Status"] == "OK"


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS)
def test_app_password_hint_for_the_main_password_of_a_2fa_user(app, user, totp_secret, plaintext):
    response = ask(app, user.account, PASSWORD)
    assert response.status_code == 200
    assert response.headers["Auth-Status"] == app_passwords.APP_PASSWORD_REQUIRED
    assert response.headers["Auth-Wait"] == "3" and "Auth-Server" not in response.headers


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS)
def test_refusal_headers(app, user):
    imap = ask(app, user.account, "wrong password!")
    assert imap.headers["Auth-Status"] == "Invalid login or password" and imap.headers["Auth-Wait"] == "3"
    assert "Auth-Error-Code" not in imap.headers
    smtp = ask(app, user.account, "wrong password!", "smtp")
    assert smtp.headers["Auth-Error-Code"] == "535 5.7.8"
    last = ask(app, user.account, "wrong password!", Auth_Login_Attempt="12")
    assert "Auth-Wait" not in last.headers  # nginx closes the connection
    event = AuditEvent.select().where(AuditEvent.event == "mail_login").order_by(AuditEvent.id).first()
    assert (event.method, event.ip, event.outcome) == ("imap", "198.51.100.77", "fail")


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS, THROTTLE_ACCOUNT_FAILURES=3, THROTTLE_WINDOW_MINUTES=1440)
def test_throttled_answer_waits_longer(app, user, plaintext):
    for _ in range(3):
        ask(app, user.account, "wrong password!")
    response = ask(app, user.account, plaintext)
    assert response.headers["Auth-Status"] == app_passwords.THROTTLED
    assert int(response.headers["Auth-Wait"]) > 3


@pytest.mark.app_config(MAIL_BACKENDS=BACKENDS)
def test_deleting_an_app_password_takes_effect_on_the_next_login(app, user, totp_secret):
    client = Client()
    row, plaintext = app_passwords.create(user, "Mail.app", client)
    assert ask(app, user.account, plaintext).headers["Auth-Status"] == "OK"
    app_passwords.delete(user, row.id, client)
    assert ask(app, user.account, plaintext).headers["Auth-Status"] == "Invalid login or password"


@pytest.mark.app_config(MAIL_BACKENDS="imap=192.0.2.143:143")
def test_missing_backend_is_a_temporary_failure_not_a_500(app, user):
    response = ask(app, user.account, PASSWORD, "smtp")
    assert response.status_code == 200
    assert (
        response.headers["Auth-Status"].startswith("Temporary") and response.headers["Auth-Error-Code"] == "454 4.7.0"
    )


def test_database_failure_is_a_temporary_failure(app, user, monkeypatch):
    def down(*_args):
        raise peewee.OperationalError("could not connect to server")

    monkeypatch.setattr(app_passwords, "authenticate", down)
    response = ask(app, user.account, PASSWORD, "pop3")
    assert response.status_code == 503 and response.headers["Auth-Status"].startswith("Temporary")
    assert response.headers["Auth-Wait"] == "3"


def test_a_password_the_server_cannot_check_is_a_temporary_failure(app, user, hashing_fails):
    response = ask(app, user.account, PASSWORD, "imap")
    assert response.status_code == 503 and response.headers["Auth-Status"].startswith("Temporary")
    assert "Auth-Server" not in response.headers


@pytest.mark.parametrize(
    ("user_header", "pass_header"),
    [
        ("alice%00@mail.xamd.edu.cn", quote(PASSWORD)),
        ("%ff%fe%00", "%00"),
        ("alice@mail.xamd.edu.cn", "%ZZ%"),
        ("", ""),
        ("a" * 5000, "b" * 5000),
    ],
)
def test_malformed_credentials_are_refused_never_a_500(app, user, user_header, pass_header):
    response = app.test_client().get(
        URL,
        headers={"Auth-Method": "plain", "Auth-User": user_header, "Auth-Pass": pass_header, "Auth-Protocol": "imap"},
    )
    assert response.status_code == 200 and response.headers["Auth-Status"] == "Invalid login or password"


@pytest.mark.parametrize("method", ["cram-md5", "apop", "external"])
def test_non_plaintext_methods_are_refused(app, user, method):
    response = ask(app, user.account, PASSWORD, Auth_Method=method)
    assert response.headers["Auth-Status"] == "Unsupported authentication method"
