"""The OpenID Connect provider: discovery, the code flow through both login steps, PKCE, id_token."""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata

from portal.models import LoginSession, OAuthCode, OAuthToken
from portal.oidc import keys, tokens
from portal.services import accounts, policy
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.oidc_support import RP_CALLBACK, RelyingParty, authorize, code_from, error_from, id_token_claims
from tests.views.support import BIND, PAGE, complete_login, confirm, dialog_secret, location

ISSUER = "http://127.0.0.1:8000"


@pytest.fixture(scope="session")
def keys_file(tmp_path_factory):
    return str(tmp_path_factory.mktemp("oidc") / "oidc-keys.json")


@pytest.fixture
def app_config(app_config, keys_file):
    app_config["OIDC_KEYS_FILE"] = keys_file
    return app_config


@pytest.fixture
def webmail(app, ctx):
    """Roundcube 1.6 as it registers: confidential, no PKCE, no nonce."""
    return RelyingParty(app, "网页邮箱", RP_CALLBACK)


@pytest.fixture
def spa(app, ctx):
    return RelyingParty(app, "课程平台", "http://localhost:5173/callback", public=True)


@pytest.fixture
def signed_in(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    return browser


def test_discovery_is_valid_metadata_with_the_configured_issuer(app, browser):
    document = browser.get("/.well-known/openid-configuration", Host="evil.example").get_json()
    OpenIDProviderMetadata(document).validate()
    assert document["issuer"] == ISSUER
    assert document["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "amr" in document["claims_supported"]
    published = browser.get("/oauth/jwks").get_json()["keys"]
    assert published and all("d" not in key and key["kid"] for key in published)


def test_an_anonymous_browser_logs_in_with_both_steps_and_comes_back_with_a_code(
    browser, webmail, user, totp_secret, clock
):
    url = webmail.authorize_url(pkce=False)
    assert location(browser.get(url)) == "/login"
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"
    assert browser.get(url).headers["Location"].endswith("/login/verify")  # half logged in: still the second step
    response = browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)})
    assert response.headers["Location"].startswith("/oauth/authorize?")
    code = code_from(browser.get(response.headers["Location"]), webmail)
    tokens_ = webmail.token(code, pkce=False, post=True).get_json()  # Roundcube 1.6: client_secret_post
    assert tokens_["token_type"] == "Bearer" and 0 < tokens_["expires_in"] <= 3600
    claims = id_token_claims(tokens_["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == [webmail.client_id]
    assert claims["email"] == user.account and claims["amr"] == ["pwd", "otp", "mfa"]
    assert abs(claims["auth_time"] - time.time()) < 60
    assert claims["sub"] == tokens.subject(user) and "nonce" not in claims


def test_the_state_comes_back_and_the_nonce_goes_into_the_id_token(signed_in, webmail):
    response = signed_in.get(webmail.authorize_url(pkce=False, state="xyz", nonce="n-0S6_WzA2Mj"))
    assert parse_qs(urlsplit(response.headers["Location"]).query)["state"] == ["xyz"]
    body = webmail.token(code_from(response, webmail), pkce=False).get_json()
    assert id_token_claims(body["id_token"])["nonce"] == "n-0S6_WzA2Mj"


def test_userinfo_names_the_same_subject_as_the_id_token(signed_in, webmail, user):
    body = webmail.token(authorize(signed_in, webmail)).get_json()
    info = webmail.http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.get_json() == {
        "sub": id_token_claims(body["id_token"])["sub"],
        "email": user.account,
        "email_verified": True,
        "name": "Alice",
    }
    assert webmail.http.get("/oauth/userinfo", headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.parametrize(
    "redirect_uri",
    [
        RP_CALLBACK + "/",
        RP_CALLBACK.upper(),
        RP_CALLBACK + "?next=1",
        RP_CALLBACK + "#frag",
        RP_CALLBACK.replace("https://", "https://evil@"),
        "https://evil.example/cb",
        None,
    ],
)
def test_a_redirect_uri_not_registered_exactly_gets_an_error_page_never_a_redirect(signed_in, webmail, redirect_uri):
    response = signed_in.get(webmail.authorize_url(redirect_uri=redirect_uri))
    assert response.status_code == 400 and "Location" not in response.headers
    assert "回调地址" in text(response)


def test_an_unknown_client_gets_an_error_page(signed_in, webmail):
    response = signed_in.get(webmail.authorize_url(client_id="no-such-client"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert "应用未登记" in text(response)


def test_pkce_s256_is_checked_and_required_for_public_clients(signed_in, spa):
    assert error_from(signed_in.get(spa.authorize_url(pkce=False, nonce="n1")))["error"] == "invalid_request"
    plain = spa.authorize_url(pkce=False, nonce="n2", code_challenge=spa.verifier, code_challenge_method="plain")
    assert error_from(signed_in.get(plain))["error"] == "invalid_request"
    no_method = spa.authorize_url(pkce=False, nonce="n3", code_challenge=spa.challenge)  # would default to plain
    assert error_from(signed_in.get(no_method))["error"] == "invalid_request"
    assert error_from(signed_in.get(spa.authorize_url(nonce=None)))["error"] == "invalid_request"  # nonce required

    code = authorize(signed_in, spa, nonce="n4")
    wrong = spa.token(code, code_verifier="x" * 50)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    code = authorize(signed_in, spa, nonce="n5")
    body = spa.token(code).get_json()
    assert body["access_token"] and "refresh_token" not in body  # public clients get no refresh token


def test_a_confidential_client_may_not_send_a_verifier_it_never_committed_to(signed_in, webmail):
    code = authorize(signed_in, webmail, pkce=False)
    response = webmail.token(code, pkce=True)  # RFC 9700 §4.8: no challenge, so no verifier
    assert response.status_code == 400


def test_a_confidential_client_must_authenticate(signed_in, webmail):
    bad = base64.b64encode(f"{webmail.client_id}:x".encode()).decode()
    code = authorize(signed_in, webmail)
    response = webmail.http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": RP_CALLBACK,
            "client_id": webmail.client_id,
        },
    )
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    wrong = webmail.http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": RP_CALLBACK},
        headers={"Authorization": f"Basic {bad}"},
    )
    assert wrong.status_code == 401


def test_prompt_login_and_max_age_send_the_browser_through_the_login_again(signed_in, webmail, user):
    old = LoginSession.get(LoginSession.user == user)
    response = signed_in.get(webmail.authorize_url(prompt="login"))
    assert location(response) == "/login"
    assert LoginSession.get_by_id(old.id).ended_at is not None
    # after the new login the remembered request no longer carries prompt=login (no loop)
    assert location(signed_in.login(user.account, PASSWORD)) == "/login/verify"

    LoginSession.update(verified_at=old.created_at.replace(year=2000)).execute()
    other = signed_in.get(webmail.authorize_url(max_age="60"))
    assert location(other) in ("/login", "/login/verify")


def test_max_age_within_the_limit_needs_no_new_login(signed_in, webmail):
    assert authorize(signed_in, webmail, max_age="3600")


def test_prompt_none_without_a_login_answers_login_required_to_the_client(browser, webmail):
    assert error_from(browser.get(webmail.authorize_url(prompt="none")))["error"] == "login_required"


def test_a_trusted_device_shows_in_amr_without_mfa(browser, webmail, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock, trust=True)
    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/"  # trusted: no second step
    body = webmail.token(authorize(browser, webmail)).get_json()
    assert id_token_claims(body["id_token"])["amr"] == ["pwd", "trusted-device"]


def test_a_user_without_a_second_factor_is_not_authorized(browser, webmail, user):
    assert location(browser.login(user.account, PASSWORD)) == "/"
    response = browser.get(webmail.authorize_url())
    assert response.status_code == 403 and "请先开启二次验证" in text(response)
    assert OAuthCode.select().count() == 0


def test_forced_binding_comes_first_then_the_authorization(browser, webmail, user, clock):
    policy.set_value("force_2fa", "listed")
    policy.set_value("enabled_methods", "totp")
    accounts.set_policy(user.account, force=True)
    browser.get(webmail.authorize_url())
    assert location(browser.login(user.account, PASSWORD)) == PAGE
    dialog = browser.get(BIND, htmx=True)
    done = confirm(browser, dialog, clock.next_code(dialog_secret(dialog)))
    assert "/login/continue" in text(done)  # 进入邮箱 goes on to the authorization
    resumed = browser.get("/login/continue").headers["Location"]
    assert resumed.startswith("/oauth/authorize?")
    code = code_from(browser.get(resumed), webmail)
    assert id_token_claims(webmail.token(code).get_json()["id_token"])["amr"] == ["pwd", "otp", "mfa"]


def test_keys_rotate_new_key_signs_old_one_still_published(app, tmp_path, signed_in, webmail):
    app.config["OIDC_KEYS_FILE"] = str(tmp_path / "rotating.json")
    first = webmail.token(authorize(signed_in, webmail)).get_json()["id_token"]
    runner = app.test_cli_runner()
    result = runner.invoke(args=["oidc", "rotate-keys"])
    assert result.exit_code == 0 and "new signing key" in result.output
    second = webmail.token(authorize(signed_in, webmail)).get_json()["id_token"]
    published = {key["kid"] for key in signed_in.get("/oauth/jwks").get_json()["keys"]}
    assert len(published) == 2
    assert id_token_claims(first) and id_token_claims(second)  # both verify against the JWKS
    from joserfc import jws

    assert (
        jws.extract_compact(second.encode()).headers()["kid"]
        == keys.signing_key().kid
        != (jws.extract_compact(first.encode()).headers()["kid"])
    )


def test_the_database_keeps_no_raw_code_token_or_secret(signed_in, webmail):
    code = authorize(signed_in, webmail)
    body = webmail.token(code).get_json()
    stored = [
        str(value)
        for model in (OAuthCode, OAuthToken, webmail.row.__class__)
        for row in model.select().dicts()
        for value in row.values()
    ]
    for raw in (code, body["access_token"], body["refresh_token"], webmail.secret):
        assert not any(raw in value for value in stored)


def test_the_admin_page_lists_the_clients_read_only_without_secrets(browser, webmail, user, totp_secret, clock):
    accounts.set_role(user.account, "admin")
    complete_login(browser, user.account, totp_secret, clock)
    body = text(browser.get("/admin"))
    assert "单点登录应用" in body and "网页邮箱" in body and webmail.client_id in body and RP_CALLBACK in body
    assert webmail.secret not in body


def test_the_cli_registers_lists_and_removes_clients(app, ctx):
    runner = app.test_cli_runner()
    added = runner.invoke(args=["oidc", "client", "add", "网页邮箱", "--redirect-uri", RP_CALLBACK])
    assert added.exit_code == 0, added.output
    lines = dict(line.split(": ", 1) for line in added.stdout.splitlines() if ": " in line)
    # hex ids: one beginning with "-" would be read as an option by `oidc client remove` (a flaky CI run once)
    assert re.fullmatch("[0-9a-f]{32}", lines["client_id"]) and len(lines["client_secret"]) >= 43
    dovecot = runner.invoke(args=["oidc", "client", "add", "Dovecot", "--resource-server"])
    assert "client_secret: " in dovecot.stdout
    public = runner.invoke(args=["oidc", "client", "add", "SPA", "--public", "--redirect-uri", "http://localhost/cb"])
    assert "client_secret" not in public.stdout
    listed = runner.invoke(args=["oidc", "client", "list"]).output
    assert lines["client_id"] in listed and "resource server" in listed and "public" in listed
    assert lines["client_secret"] not in listed
    refused = runner.invoke(args=["oidc", "client", "add", "x", "--redirect-uri", "http://evil.example/cb"])
    assert refused.exit_code != 0 and "https" in refused.output
    assert runner.invoke(args=["oidc", "client", "remove", lines["client_id"]]).exit_code == 0
    assert runner.invoke(args=["oidc", "client", "remove", lines["client_id"]]).exit_code != 0


def test_the_login_page_names_the_app_the_login_is_for(browser, new_browser, webmail):
    browser.get(webmail.authorize_url())
    assert "登录后将进入“网页邮箱”" in text(browser.get("/login"))
    assert "data-sso-app" not in text(new_browser().get("/login"))


def test_the_login_pages_may_post_on_to_the_client_the_login_is_for(browser, new_browser, webmail, user, totp_secret):
    """Browsers apply CSP form-action to the redirects after a form POST: /login/verify → /oauth/authorize
    → the client's redirect URI. Only that registered origin is added, only while the request is pending."""
    browser.get(webmail.authorize_url(pkce=False))
    policy_ = browser.get("/login").headers["Content-Security-Policy"]
    assert "form-action 'self' https://webmail.mail.xamd.edu.cn;" in policy_
    browser.login(user.account, PASSWORD)
    assert (
        "form-action 'self' https://webmail.mail.xamd.edu.cn;"
        in browser.get("/login/verify").headers["Content-Security-Policy"]
    )
    assert "form-action 'self';" in new_browser().get("/login").headers["Content-Security-Policy"]
    other = new_browser()
    other.get(webmail.authorize_url(pkce=False, redirect_uri="https://evil.example/cb"))  # refused, not remembered
    assert "form-action 'self';" in other.get("/login").headers["Content-Security-Policy"]


@pytest.mark.app_config(ENV="production", PUBLIC_URL="http://mail2fa.xamd.edu.cn")
def test_production_over_plain_http_offers_no_single_sign_on(browser, webmail):
    response = browser.get("/.well-known/openid-configuration")
    assert response.status_code == 503 and "https" in response.get_json()["error_description"]
    assert browser.get(webmail.authorize_url()).status_code == 503


def test_a_trusted_network_login_shows_in_amr_without_mfa(browser, webmail, user, totp_secret):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    browser.client.environ_base["REMOTE_ADDR"] = "10.20.30.40"
    browser.get(webmail.authorize_url())
    resumed = browser.login(user.account, PASSWORD).headers["Location"]
    assert resumed.startswith("/oauth/authorize?")  # no second step on the campus network
    body = webmail.token(code_from(browser.get(resumed), webmail)).get_json()
    assert id_token_claims(body["id_token"])["amr"] == ["pwd", "trusted-network"]
