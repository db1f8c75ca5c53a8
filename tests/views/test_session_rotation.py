"""Invariant 2: the session id rotates at each step; logout, disabling and revocation end it server-side."""

from __future__ import annotations

from portal.models import LoginSession
from portal.services import accounts
from portal.web.guard import SESSION_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import REDIRECTS, complete_login, location


def replay(app, token: str, url: str = "/"):
    """A request from another client that presents a copied session cookie."""
    client = app.test_client()
    client.set_cookie(SESSION_COOKIE, token)
    return client.get(url)


def assert_dead(app, token: str) -> None:
    response = replay(app, token)
    assert response.status_code in REDIRECTS and location(response) == "/login"
    assert replay(app, token, "/login/verify").headers["Location"] == "/login"


def test_session_id_rotates_at_both_steps_and_old_ids_die(app, browser, user, totp_secret, clock):
    browser.client.set_cookie(SESSION_COOKIE, "planted-by-an-attacker")  # session fixation attempt
    browser.login(user.account, PASSWORD)
    half = browser.cookie(SESSION_COOKIE)
    assert half and half != "planted-by-an-attacker"
    assert replay(app, half, "/login/verify").status_code == 200  # the half-open session works ...
    assert location(replay(app, half)) == "/login/verify"  # ... for the second step only

    browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)})
    full = browser.cookie(SESSION_COOKIE)
    assert full and full != half
    assert replay(app, full).status_code == 200
    assert_dead(app, half)  # the pre-rotation token is worth nothing now


def test_logging_in_again_replaces_the_previous_session(app, browser, user):
    browser.login(user.account, PASSWORD)
    first = browser.cookie(SESSION_COOKIE)
    assert replay(app, first).status_code == 200
    browser.login(user.account, PASSWORD)
    second = browser.cookie(SESSION_COOKIE)
    assert second != first
    assert_dead(app, first)
    assert replay(app, second).status_code == 200


def test_logout_ends_the_session_server_side(app, browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    token = browser.cookie(SESSION_COOKIE)
    response = browser.post("/logout")
    assert location(response) == "/login"
    assert browser.cookie(SESSION_COOKIE) is None  # the browser forgets it ...
    assert_dead(app, token)  # ... and a copy of it is useless
    session = LoginSession.get(LoginSession.user == user)
    assert session.ended_at is not None and session.end_reason == "logout"


def test_logout_of_a_half_open_session_ends_it(app, browser, user, totp_secret):
    browser.login(user.account, PASSWORD)
    token = browser.cookie(SESSION_COOKIE)
    browser.post("/logout")
    assert_dead(app, token)


def test_logout_needs_post(browser, user):
    browser.login(user.account, PASSWORD)
    response = browser.get("/logout")
    assert response.status_code == 405
    assert browser.get("/").status_code == 200  # still logged in


def test_disabling_the_user_ends_the_session(app, browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    token = browser.cookie(SESSION_COOKIE)
    accounts.set_disabled(user.account, True)
    assert_dead(app, token)
    assert location(browser.get("/settings")) == "/login"
    accounts.set_disabled(user.account, False)
    assert_dead(app, token)  # enabling again does not revive an ended session
    response = browser.login(user.account, PASSWORD)
    assert location(response) == "/login/verify"


def test_disabled_user_cannot_log_in(browser, user):
    accounts.set_disabled(user.account, True)
    response = browser.login(user.account, PASSWORD)
    assert response.status_code == 401 and "账号或密码错误" in text(response)
    assert browser.cookie(SESSION_COOKIE) is None


def test_password_change_and_2fa_reset_end_sessions(app, new_browser, user, totp_secret, clock):
    first, second = new_browser(), new_browser()
    complete_login(first, user.account, totp_secret, clock)
    second.login(user.account, PASSWORD)
    tokens = [first.cookie(SESSION_COOKIE), second.cookie(SESSION_COOKIE)]
    accounts.set_password(user.account, "Another-horse-7")
    for token in tokens:
        assert_dead(app, token)

    first.login(user.account, "Another-horse-7")
    token = first.cookie(SESSION_COOKIE)
    accounts.reset_2fa(user.account, reason="lost phone")
    assert_dead(app, token)
