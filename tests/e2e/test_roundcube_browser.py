"""Webmail through the portal, in Chromium: Roundcube 1.6 (deploy/roundcube/) logs in with the portal's
OpenID Connect provider (password, then 第三方 OTP) and opens the mailbox at Dovecot 2.3 with XOAUTH2;
Dovecot's oauth2 passdb (deploy/dovecot/) asks the portal's introspection endpoint about every token.

The portal is http://localhost:PORT (its PUBLIC_URL, the issuer) and Roundcube http://127.0.0.1:PORT2, so
their cookies never mix. Roundcube calls the token endpoint itself at 127.0.0.1 (a back channel).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote, urlsplit

import pyotp
import pytest
from playwright.sync_api import Page, expect

from portal import crypto
from portal.models import Factor
from portal.services import accounts
from tests.conftest import PASSWORD
from tests.e2e.conftest import TIMEOUT_MS, LiveServer, serve_portal
from tests.e2e.oauth_client import CodeFlow
from tests.e2e.pages import log_out
from tests.helpers import free_port
from tests.integration.clients import imap_xoauth2
from tests.integration.dovecot import Dovecot, start_dovecot
from tests.integration.procs import HOST, log_tail
from tests.integration.roundcube import Roundcube, roundcube_url, start_roundcube

pytestmark = pytest.mark.e2e

ACCOUNT = "alice@mail.xamd.edu.cn"
SUBJECT = "期末考试安排 (exam timetable)"
INBOX_MS = 20_000  # Roundcube's first page: token call, IMAP login, then the message list by XHR


@dataclass
class Webmail:
    portal: LiveServer
    roundcube: Roundcube
    dovecot: Dovecot
    flow: CodeFlow  # the test's own OAuth client, registered like Roundcube
    totp: pyotp.TOTP


def register_client(portal: LiveServer, name: str, **options) -> tuple[str, str]:
    """(client_id, client_secret) of a confidential client, as `flask oidc client add` creates it."""
    from portal.oidc import clients

    client, secret = portal.run(lambda: clients.add(name, **options))
    return client.client_id, secret


def create_user_with_totp(portal: LiveServer) -> pyotp.TOTP:
    portal.create_user(ACCOUNT, name="Alice")
    secret = pyotp.random_base32()
    portal.run(lambda: Factor.create(user=accounts.get(ACCOUNT), method="totp", secret=crypto.encrypt(secret)))
    return pyotp.TOTP(secret)


def deliver_message(dovecot: Dovecot) -> None:
    message = EmailMessage()
    message["From"] = "jwc@mail.xamd.edu.cn"
    message["To"] = ACCOUNT
    message["Subject"] = SUBJECT
    message["Date"] = "Tue, 01 Dec 2026 09:00:00 +0800"
    message["Message-ID"] = "<exam-timetable@mail.xamd.edu.cn>"
    message.set_content("考试时间见附表。")
    dovecot.deliver(ACCOUNT, message.as_bytes())


@pytest.fixture
def webmail(tmp_path: Path) -> Iterator[Webmail]:
    with serve_portal(tmp_path / "sso.db", host_name="localhost") as portal:
        portal_port = urlsplit(portal.url).port
        backchannel = f"http://{HOST}:{portal_port}"
        roundcube_port = free_port()
        redirect_uri = f"{roundcube_url(roundcube_port)}/index.php/login/oauth"
        roundcube_id, roundcube_secret = register_client(portal, "roundcube", redirect_uris=[redirect_uri])
        dovecot_id, dovecot_secret = register_client(portal, "dovecot", redirect_uris=[], resource_server=True)
        introspection = f"http://{quote(dovecot_id, safe='')}:{quote(dovecot_secret, safe='')}@{HOST}:{portal_port}"
        dovecot = start_dovecot(tmp_path / "dovecot", "oauth2", introspection_url=f"{introspection}/oauth/introspect")
        logs = [dovecot.log]
        try:
            roundcube = start_roundcube(
                tmp_path / "roundcube",
                roundcube_port,
                portal_url=portal.url,
                backchannel_url=backchannel,
                client_id=roundcube_id,
                client_secret=roundcube_secret,
                imap_port=dovecot.imap_port,
                smtp_port=free_port(),  # nothing listens: sending is not part of this test
            )
            logs += roundcube.logs()
            try:
                flow = CodeFlow(portal.url, roundcube_id, roundcube_secret, redirect_uri)
                yield Webmail(portal, roundcube, dovecot, flow, create_user_with_totp(portal))
            finally:
                roundcube.stop()
        finally:
            dovecot.stop()
            print(log_tail(*logs, lines=60))  # shown by pytest only when the test failed


@pytest.fixture
def browser_page(chromium) -> Iterator[Page]:
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def log_in_at_portal(page: Page, totp: pyotp.TOTP) -> None:
    """The portal's two steps, reached from another site: password, then the 第三方 OTP code."""
    expect(page.get_by_role("heading", name="邮箱登录")).to_be_visible()
    page.get_by_label("账号").fill(ACCOUNT)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="二次验证")).to_be_visible()
    page.get_by_label("验证码").fill(totp.now())
    page.get_by_role("button", name="确定").click()


def test_roundcube_logs_in_through_the_portal_and_logout_ends_imap(webmail, browser_page):
    page = browser_page
    deliver_message(webmail.dovecot)

    # Roundcube sends the browser straight to the portal (oauth_login_redirect), which asks for both steps.
    page.goto(webmail.roundcube.url + "/")
    expect(page).to_have_url(re.compile("^" + re.escape(webmail.portal.url) + "/login"))
    log_in_at_portal(page, webmail.totp)

    # Back at Roundcube, logged in as the account, with the inbox read over IMAP XOAUTH2.
    expect(page).to_have_url(re.compile("^" + re.escape(webmail.roundcube.url) + "/"), timeout=INBOX_MS)
    expect(page.locator("#messagelist")).to_contain_text(SUBJECT, timeout=INBOX_MS)
    assert f"user=<{ACCOUNT}>, method=XOAUTH2" in webmail.dovecot.log_text()

    # A token of this portal session, taken by the test's own client with the browser's portal cookies.
    tokens = webmail.flow.run(page.context.cookies(webmail.portal.url))
    assert tokens["token_type"] == "Bearer"
    assert webmail.flow.id_token_claims(tokens)["email"] == ACCOUNT  # Roundcube's oauth_identity_fields
    assert imap_xoauth2(webmail.dovecot.imap_port, ACCOUNT, tokens["access_token"])
    assert not imap_xoauth2(webmail.dovecot.imap_port, "bob@mail.xamd.edu.cn", tokens["access_token"])

    # Logging out at the portal revokes the session's tokens: Dovecot's introspection now refuses them,
    # the test's and Roundcube's alike (Roundcube still has its own session, but no mailbox).
    page.goto(webmail.portal.url + "/")
    log_out(page)
    assert not imap_xoauth2(webmail.dovecot.imap_port, ACCOUNT, tokens["access_token"])
    page.goto(webmail.roundcube.url + "/?_task=mail")
    expect(page.get_by_text("连接至 IMAP 服务器失败")).to_be_visible(timeout=INBOX_MS)
    expect(page.locator("#messagelist")).not_to_contain_text(SUBJECT)
