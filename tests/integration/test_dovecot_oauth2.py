"""Dovecot 2.3's oauth2 passdb (deploy/dovecot/) asking the portal's introspection endpoint: access tokens
open IMAP with XOAUTH2 and OAUTHBEARER for their own account only, and stop at the portal's logout."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pyotp
import pytest

from portal import crypto
from portal.models import Factor
from portal.services import accounts
from tests.conftest import PASSWORD
from tests.helpers import Browser
from tests.integration.clients import imap_oauthbearer, imap_xoauth2
from tests.integration.conftest import _serve, print_logs_if_failed
from tests.integration.dovecot import Dovecot, start_dovecot
from tests.integration.portal_server import LivePortal

pytestmark = pytest.mark.integration

ACCOUNT = "alice@mail.xamd.edu.cn"
OTHER = "bob@mail.xamd.edu.cn"
REDIRECT_URI = "http://127.0.0.1:9/index.php/login/oauth"  # never opened: the test reads the code off the redirect


@pytest.fixture
def sso_portal(tmp_path) -> Iterator[LivePortal]:
    portal = LivePortal(tmp_path / "portal.db")
    portal.app.config["PUBLIC_URL"] = portal.url
    yield from _serve(portal)


@pytest.fixture
def registered(sso_portal) -> dict[str, tuple[str, str]]:
    """(client_id, secret) of a webmail client and of Dovecot (a resource server)."""
    from portal.oidc import clients

    def add(name, **options):
        client, secret = sso_portal.run(lambda: clients.add(name, **options))
        return client.client_id, secret

    return {
        "webmail": add("webmail", redirect_uris=[REDIRECT_URI]),
        "dovecot": add("dovecot", redirect_uris=[], resource_server=True),
    }


@pytest.fixture
def oauth2_dovecot(request, tmp_path, sso_portal, registered) -> Iterator[Dovecot]:
    client_id, secret = (quote(part, safe="") for part in registered["dovecot"])
    url = f"http://{client_id}:{secret}@127.0.0.1:{sso_portal.port}/oauth/introspect"
    server = start_dovecot(tmp_path / "dovecot-oauth2", "oauth2", introspection_url=url)
    yield server
    server.stop()
    print_logs_if_failed(request, server.log)


def user_with_totp(portal: LivePortal, account: str) -> pyotp.TOTP:
    portal.create_user(account, PASSWORD)
    secret = pyotp.random_base32()
    portal.run(lambda: Factor.create(user=accounts.get(account), method="totp", secret=crypto.encrypt(secret)))
    return pyotp.TOTP(secret)


def logged_in_browser(portal: LivePortal, account: str) -> Browser:
    totp = user_with_totp(portal, account)
    browser = Browser(portal.app.test_client())
    assert browser.login(account, PASSWORD).status_code in (302, 303)
    response = browser.post("/login/verify", {"method": "totp", "code": totp.now()})
    assert urlsplit(response.headers.get("Location", "")).path == "/", response.status_code
    return browser


def access_token(browser: Browser, client: tuple[str, str]) -> str:
    """The authorization code flow as Roundcube 1.6 runs it (no PKCE, no nonce, client_secret_post)."""
    client_id, secret = client
    query = urlencode(
        {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": "openid email"}
        | {"state": "s1"}
    )
    response = browser.get(f"/oauth/authorize?{query}")
    location = response.headers.get("Location", "")
    assert location.startswith(REDIRECT_URI + "?"), (response.status_code, location)
    code = parse_qs(urlsplit(location).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    response = browser.post("/oauth/token", form | {"client_id": client_id, "client_secret": secret}, csrf=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    tokens = response.get_json()
    assert tokens["token_type"] == "Bearer"
    return tokens["access_token"]


def test_a_token_opens_its_own_mailbox_only(sso_portal, registered, oauth2_dovecot):
    browser = logged_in_browser(sso_portal, ACCOUNT)
    token = access_token(browser, registered["webmail"])
    assert imap_xoauth2(oauth2_dovecot.imap_port, ACCOUNT, token)
    assert imap_oauthbearer(oauth2_dovecot.imap_port, ACCOUNT, token)
    assert not imap_xoauth2(oauth2_dovecot.imap_port, OTHER, token)
    assert not imap_xoauth2(oauth2_dovecot.imap_port, ACCOUNT, token[:-2] + "xx")
    assert f"user=<{ACCOUNT}>, method=XOAUTH2" in oauth2_dovecot.log_text()


def test_logout_at_the_portal_ends_the_token(sso_portal, registered, oauth2_dovecot):
    browser = logged_in_browser(sso_portal, ACCOUNT)
    token = access_token(browser, registered["webmail"])
    assert imap_xoauth2(oauth2_dovecot.imap_port, ACCOUNT, token)
    assert browser.post("/logout").status_code in (302, 303)
    assert not imap_xoauth2(oauth2_dovecot.imap_port, ACCOUNT, token)
    assert not imap_oauthbearer(oauth2_dovecot.imap_port, ACCOUNT, token)
