"""Codes and tokens: single use, rotation with reuse detection, introspection, revocation, logout (invariant 13)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from portal.models import LoginSession, OAuthCode, OAuthToken, ThrottleCounter, utcnow
from portal.services import accounts, factors, throttle
from portal.services.client import Client
from tests.helpers import run_threads, text
from tests.views.oidc_support import RP_CALLBACK, RelyingParty, authorize, id_token_claims
from tests.views.support import complete_login, location
from tests.views.test_oidc_provider import app_config, keys_file  # noqa: F401 -- shared fixtures

WEB = Client.of("127.0.0.1", "tests")


@pytest.fixture
def webmail(app, ctx):
    return RelyingParty(app, "网页邮箱", RP_CALLBACK)


@pytest.fixture
def dovecot(app, ctx):
    return RelyingParty(app, "Dovecot", None, resource_server=True)


@pytest.fixture
def signed_in(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    return browser


@pytest.fixture
def issued(signed_in, webmail) -> dict:
    """Tokens Roundcube holds after its login."""
    body = webmail.token(authorize(signed_in, webmail, pkce=False), pkce=False, post=True).get_json()
    assert body["access_token"] and body["refresh_token"]
    return body


def active(rp: RelyingParty, token: str) -> bool:
    return rp.introspect(token)["active"]


def test_a_code_works_once_and_a_second_redemption_revokes_what_the_first_issued(signed_in, webmail, dovecot):
    code = authorize(signed_in, webmail)
    first = webmail.token(code).get_json()
    assert active(dovecot, first["access_token"])
    again = webmail.token(code)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert not active(dovecot, first["access_token"])
    assert webmail.refresh(first["refresh_token"]).status_code == 400


def test_two_concurrent_redemptions_have_exactly_one_winner(app, signed_in, webmail):
    code = authorize(signed_in, webmail)
    results = run_threads(app, 6, lambda _: webmail.token(code).status_code)
    statuses = sorted(value for kind, value in results if kind == "ok")
    assert statuses == [200, 400, 400, 400, 400, 400], results


def test_an_expired_code_is_refused(signed_in, webmail):
    code = authorize(signed_in, webmail)
    OAuthCode.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert webmail.token(code).get_json()["error"] == "invalid_grant"


def test_a_code_lives_60_seconds(signed_in, webmail):
    authorize(signed_in, webmail)
    row = OAuthCode.get()
    assert timedelta(seconds=55) <= row.expires_at - row.created_at <= timedelta(seconds=60)


def test_a_code_for_another_client_or_redirect_uri_is_refused(app, signed_in, webmail):
    other = RelyingParty(app, "别的应用", "https://other.mail.xamd.edu.cn/cb")
    code = authorize(signed_in, webmail)
    assert other.token(code).status_code == 400
    code = authorize(signed_in, webmail)
    assert webmail.token(code, redirect_uri="https://webmail.mail.xamd.edu.cn/other").status_code == 400


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_family(issued, webmail, dovecot):
    second = webmail.refresh(issued["refresh_token"]).get_json()
    assert second["refresh_token"] != issued["refresh_token"] and second["access_token"]
    assert not active(dovecot, issued["access_token"]) and active(dovecot, second["access_token"])
    replay = webmail.refresh(issued["refresh_token"])  # the old one again: stolen
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert not active(dovecot, second["access_token"])
    assert webmail.refresh(second["refresh_token"]).status_code == 400


def test_two_concurrent_refreshes_have_one_winner(app, issued, webmail):
    results = run_threads(app, 4, lambda _: webmail.refresh(issued["refresh_token"]).status_code)
    assert sorted(value for _, value in results).count(200) == 1, results


def test_introspection_answers_what_dovecot_reads(issued, dovecot, user):
    answer = dovecot.introspect(issued["access_token"])
    assert answer["active"] is True and answer["username"] == user.account == answer["email"]
    assert answer["token_type"] == "Bearer" and answer["scope"] == "openid profile email"
    assert answer["sub"] == id_token_claims(issued["id_token"])["sub"] and answer["exp"] > answer["iat"]
    assert dovecot.introspect("not-a-token") == {"active": False}


def test_dovecot_style_basic_with_empty_form_fields_authenticates(issued, dovecot):
    response = dovecot.http.post(
        "/oauth/introspect",
        data={"token": issued["access_token"], "client_id": "", "client_secret": ""},
        headers=dovecot.basic(),
    )
    assert response.status_code == 200 and response.get_json()["active"] is True
    assert response.headers["Cache-Control"] == "no-store"


def test_introspection_needs_an_authenticated_client_allowed_to_see_the_token(app, issued, dovecot):
    anonymous = dovecot.http.post("/oauth/introspect", data={"token": issued["access_token"]})
    assert anonymous.status_code == 401
    wrong = base64.b64encode(f"{dovecot.client_id}:wrong".encode()).decode()
    refused = dovecot.http.post(
        "/oauth/introspect", data={"token": issued["access_token"]}, headers={"Authorization": f"Basic {wrong}"}
    )
    assert refused.status_code == 401
    bystander = RelyingParty(app, "别的应用", "https://other.mail.xamd.edu.cn/cb")
    assert bystander.introspect(issued["access_token"]) == {"active": False}  # not its token, not a resource server


def test_revocation_ends_a_token_and_revoking_a_refresh_token_ends_its_family(issued, webmail, dovecot):
    response = webmail.http.post("/oauth/revoke", data={"token": issued["refresh_token"]}, headers=webmail.basic())
    assert response.status_code == 200
    assert not active(dovecot, issued["access_token"])
    assert webmail.refresh(issued["refresh_token"]).status_code == 400


def test_portal_logout_ends_the_tokens_at_once(signed_in, issued, webmail, dovecot):
    signed_in.post("/logout")
    assert not active(dovecot, issued["access_token"])
    assert webmail.refresh(issued["refresh_token"]).status_code == 400


def test_a_code_issued_before_a_logout_buys_nothing(signed_in, webmail):
    code = authorize(signed_in, webmail)
    signed_in.post("/logout")
    assert webmail.token(code).get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("change", ["disable", "admin_reset", "unbind", "password", "lock", "session_expired"])
def test_what_ends_a_login_ends_its_tokens(issued, dovecot, user, totp_secret, clock, change):
    if change == "disable":
        accounts.set_disabled(user.account, True, client=WEB)
    elif change == "admin_reset":
        accounts.reset_2fa(user.account, "lost phone", client=WEB)
    elif change == "unbind":
        session = LoginSession.select().where(LoginSession.ended_at.is_null()).get()
        factors.remove(user, "totp", WEB, via="totp", session=session)
    elif change == "password":
        accounts.set_password(user.account, "another-long-passphrase-42")
    elif change == "lock":
        for _ in range(20):
            try:
                with throttle.begin("otp", user.account, "203.0.113.9"):
                    pass
            except Exception:  # noqa: BLE001 -- the lock is what this loop is for
                break
        assert ThrottleCounter.select().count()
    else:
        LoginSession.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert not active(dovecot, issued["access_token"])


def test_rp_initiated_logout_with_a_hint_ends_the_session_and_returns_to_the_client(
    signed_in, issued, webmail, dovecot
):
    response = signed_in.get(
        "/oauth/logout?" + f"id_token_hint={issued['id_token']}&post_logout_redirect_uri={RP_CALLBACK}&state=bye"
    )
    assert response.headers["Location"] == f"{RP_CALLBACK}?state=bye"
    assert not active(dovecot, issued["access_token"])
    assert location(signed_in.get("/")) == "/login"


def test_rp_initiated_logout_without_a_hint_asks_first_and_never_redirects_elsewhere(signed_in, issued, dovecot):
    page = signed_in.get("/oauth/logout?post_logout_redirect_uri=https://evil.example/")
    assert page.status_code == 200 and "确认退出" in text(page)
    assert active(dovecot, issued["access_token"])
    done = signed_in.post("/oauth/logout", {"post_logout_redirect_uri": "https://evil.example/"})
    assert done.status_code == 200 and "Location" not in done.headers and "已安全退出" in text(done)
    assert "alice@mail.xamd.edu.cn" not in text(done)  # the page no longer shows who was logged in
    assert not active(dovecot, issued["access_token"])


def test_tokens_of_a_removed_client_go_with_it(app, issued, webmail, dovecot):
    result = app.test_cli_runner().invoke(args=["oidc", "client", "remove", webmail.client_id])
    assert result.exit_code == 0
    assert OAuthToken.select().count() == 0 and not active(dovecot, issued["access_token"])


def test_a_public_client_revokes_its_own_token_without_a_secret(app, signed_in, dovecot):
    spa = RelyingParty(app, "课程平台", "http://localhost:5173/callback", public=True)
    body = spa.token(authorize(signed_in, spa, nonce="n-revoke")).get_json()
    assert active(dovecot, body["access_token"])
    other = RelyingParty(app, "别的公开应用", "http://localhost:5174/callback", public=True)
    stranger = other.http.post("/oauth/revoke", data={"token": body["access_token"], "client_id": other.client_id})
    assert stranger.status_code == 400 and active(dovecot, body["access_token"])  # not its token
    own = spa.http.post("/oauth/revoke", data={"token": body["access_token"], "client_id": spa.client_id})
    assert own.status_code == 200 and not active(dovecot, body["access_token"])
