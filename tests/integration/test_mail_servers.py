"""Mail logins against real servers: nginx's mail proxy asking /mail/auth, and Dovecot asking
bin/portal-checkpassword (invariant 12: once a second factor is bound, only app passwords open mail).
"""

from __future__ import annotations

import http.client
import uuid
from datetime import datetime
from urllib.parse import quote

import pytest

from tests.integration.clients import TIMEOUT, imap_login, imap_refusal, pop3_login, smtp_login, smtp_send
from tests.integration.portal_server import row_value
from tests.integration.procs import HOST

pytestmark = pytest.mark.integration

# '%41' and '+' catch an Auth-Pass decoded twice or with '+' read as a space; no space (POP3 PASS).
MAIN_PASSWORD = "Pa%41ss+w0rd&x"
CHECKPASSWORD_TIMEOUT = 15.0  # each login starts the checkpassword program (a Python process)


def nginx_logins(proxy, account: str, password: str) -> dict[str, bool]:
    return {
        "imap": imap_login(proxy.imap_port, account, password),
        "pop3": pop3_login(proxy.pop3_port, account, password),
        "smtp": smtp_login(proxy.smtp_port, account, password),
    }


def dovecot_logins(dovecot, account: str, password: str) -> dict[str, bool]:
    return {
        "imap": imap_login(dovecot.imap_port, account, password, timeout=CHECKPASSWORD_TIMEOUT),
        "pop3": pop3_login(dovecot.pop3_port, account, password, timeout=CHECKPASSWORD_TIMEOUT),
    }


def assert_use_listed(portal, account: str, password_id: int, protocol: str, after: datetime | None) -> datetime:
    """The listing() row (使用时间) shows this use: a time, the protocol and the client's address."""
    row = portal.app_password_row(account, password_id)
    used_at = row_value(row, "last_used_at")
    assert used_at is not None, f"last_used_at not set after a {protocol} login"
    if after is not None:
        assert used_at >= after
    assert str(row_value(row, "last_protocol")).lower() == protocol
    assert row_value(row, "last_ip") == HOST
    return used_at


# --- nginx mail proxy + /mail/auth --------------------------------------------------------------------


def test_main_password_opens_mail_until_a_factor_is_bound(mail_proxy, proxied_portal):
    account = proxied_portal.create_user("main@mail.xamd.edu.cn", MAIN_PASSWORD)

    assert nginx_logins(mail_proxy, account, MAIN_PASSWORD) == {"imap": True, "pop3": True, "smtp": True}
    assert not imap_login(mail_proxy.imap_port, account, MAIN_PASSWORD + "x")
    asked = {(call["protocol"], call["user"]) for call in proxied_portal.requests.mail_auth_calls()}
    assert asked == {("imap", account), ("pop3", account), ("smtp", account)}

    proxied_portal.bind_totp(account)

    assert nginx_logins(mail_proxy, account, MAIN_PASSWORD) == {"imap": False, "pop3": False, "smtp": False}
    # The client is told why (nginx passes Auth-Status on), not just "wrong password".
    assert "app password" in imap_refusal(mail_proxy.imap_port, account, MAIN_PASSWORD).lower()


def test_app_password_opens_imap_pop3_smtp_and_its_use_is_listed(mail_proxy, proxied_portal):
    account = proxied_portal.create_user("apps@mail.xamd.edu.cn", MAIN_PASSWORD)
    other = proxied_portal.create_user("other@mail.xamd.edu.cn", MAIN_PASSWORD)
    proxied_portal.bind_totp(account)
    password_id, app_password = proxied_portal.create_app_password(account, "Foxmail")
    assert len(app_password) == 16
    assert row_value(proxied_portal.app_password_row(account, password_id), "last_used_at") is None

    assert imap_login(mail_proxy.imap_port, account, app_password)
    used_at = assert_use_listed(proxied_portal, account, password_id, "imap", None)
    assert pop3_login(mail_proxy.pop3_port, account, app_password)
    used_at = assert_use_listed(proxied_portal, account, password_id, "pop3", used_at)
    assert smtp_login(mail_proxy.smtp_port, account, app_password)
    assert_use_listed(proxied_portal, account, password_id, "smtp", used_at)

    # As shown on the page, in groups of four (GdGn eAF6 iFvU g6rB), it works too.
    grouped = " ".join(app_password[i : i + 4] for i in range(0, 16, 4))
    assert imap_login(mail_proxy.imap_port, account, grouped)
    assert smtp_login(mail_proxy.smtp_port, account, grouped)

    # An app password belongs to its account only.
    assert not imap_login(mail_proxy.imap_port, other, app_password)


def test_deleted_app_password_is_refused_at_once(mail_proxy, proxied_portal):
    account = proxied_portal.create_user("deleted@mail.xamd.edu.cn", MAIN_PASSWORD)
    proxied_portal.bind_totp(account)
    doomed_id, doomed = proxied_portal.create_app_password(account, "Outlook")
    _kept_id, kept = proxied_portal.create_app_password(account, "Thunderbird")
    assert imap_login(mail_proxy.imap_port, account, doomed)

    proxied_portal.delete_app_password(account, doomed_id)

    assert nginx_logins(mail_proxy, account, doomed) == {"imap": False, "pop3": False, "smtp": False}
    assert nginx_logins(mail_proxy, account, kept) == {"imap": True, "pop3": True, "smtp": True}


def test_message_sent_with_app_password_reaches_the_smtp_backend(mail_proxy, proxied_portal, smtp_backend):
    account = proxied_portal.create_user("sender@mail.xamd.edu.cn", MAIN_PASSWORD)
    proxied_portal.bind_totp(account)
    _password_id, app_password = proxied_portal.create_app_password(account, "Foxmail")
    subject = f"integration {uuid.uuid4()}"

    smtp_send(mail_proxy.smtp_port, account, app_password, "friend@example.org", subject, "发自客户端专用密码")

    deliveries = smtp_backend.handler.with_subject(subject)
    assert len(deliveries) == 1
    assert deliveries[0].mail_from == account
    assert deliveries[0].rcpt_tos == ["friend@example.org"]
    assert deliveries[0].message.get_content().strip() == "发自客户端专用密码"


# --- /mail/auth called directly -------------------------------------------------------------------------


def mail_auth(portal, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """One auth_http request as nginx makes it (HTTP/1.0 GET, the answer in headers)."""
    connection = http.client.HTTPConnection(HOST, portal.port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/mail/auth", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def auth_headers(account: str, password: str, **extra: str) -> dict[str, str]:
    headers = {
        "Auth-Method": "plain",
        "Auth-User": quote(account, safe=""),
        "Auth-Pass": quote(password, safe=""),
        "Auth-Protocol": "imap",
        "Auth-Login-Attempt": "1",
        "Client-IP": "192.0.2.7",
        "Client-Host": "[UNAVAILABLE]",
    }
    headers.update(extra)
    return headers


def test_mail_auth_refuses_a_caller_without_the_secret(proxied_portal, mail_auth_secret, backend_dovecot):
    account = proxied_portal.create_user("direct@mail.xamd.edu.cn", MAIN_PASSWORD)
    good = auth_headers(account, MAIN_PASSWORD)

    for headers in (good, {**good, "X-Mail-Auth-Secret": "not-the-secret"}):
        status, reply = mail_auth(proxied_portal, headers)
        assert status != 200 or reply.get("Auth-Status") != "OK", reply
        assert "Auth-Server" not in reply and "Auth-Port" not in reply

    status, reply = mail_auth(proxied_portal, {**good, "X-Mail-Auth-Secret": mail_auth_secret})
    assert (status, reply.get("Auth-Status")) == (200, "OK")
    assert (reply.get("Auth-Server"), reply.get("Auth-Port")) == (HOST, str(backend_dovecot.imap_port))

    wrong = {**auth_headers(account, "wrong-password"), "X-Mail-Auth-Secret": mail_auth_secret}
    status, reply = mail_auth(proxied_portal, wrong)
    assert status == 200 and reply.get("Auth-Status") not in (None, "OK"), reply
    assert reply.get("Auth-Wait", "").isdigit(), reply
    assert "Auth-Server" not in reply


# --- Dovecot asking the portal through bin/portal-checkpassword -----------------------------------------


def test_checkpassword_enforces_the_same_policy(checkpassword_dovecot, portal):
    dovecot = checkpassword_dovecot
    account = portal.create_user("dove@mail.xamd.edu.cn", MAIN_PASSWORD)

    assert dovecot_logins(dovecot, account, MAIN_PASSWORD) == {"imap": True, "pop3": True}
    assert not imap_login(dovecot.imap_port, account, "wrong-password", timeout=CHECKPASSWORD_TIMEOUT)
    assert not pop3_login(dovecot.pop3_port, "nobody@mail.xamd.edu.cn", MAIN_PASSWORD, timeout=CHECKPASSWORD_TIMEOUT)

    portal.bind_totp(account)
    assert dovecot_logins(dovecot, account, MAIN_PASSWORD) == {"imap": False, "pop3": False}

    password_id, app_password = portal.create_app_password(account, "Foxmail")
    assert imap_login(dovecot.imap_port, account, app_password, timeout=CHECKPASSWORD_TIMEOUT)
    used_at = assert_use_listed(portal, account, password_id, "imap", None)
    assert pop3_login(dovecot.pop3_port, account, app_password, timeout=CHECKPASSWORD_TIMEOUT)
    assert_use_listed(portal, account, password_id, "pop3", used_at)

    portal.delete_app_password(account, password_id)
    assert dovecot_logins(dovecot, account, app_password) == {"imap": False, "pop3": False}
