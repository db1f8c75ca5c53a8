"""Invariant 14: what changes the proof of identity ends what rested on the old proof.

After 解绑 or 修改 in browser A: A stays logged in, every other browser of the user is logged out,
trusted devices are revoked, and the App device / mini-program token of a removed factor stop
working. Admin reset, password change and disabling use the same mechanism.
"""

from __future__ import annotations

import pytest

from portal.models import Device, LoginSession
from portal.services import accounts, trust
from tests.api.app_support import app_factor, enrolled, error_code
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import PAGE, complete_login, confirm, dialog_secret, location


@pytest.fixture
def two_browsers(new_browser, totp_user, totp_secret, clock):
    """alice (第三方 OTP) logged in on two browsers, both trusted."""
    browsers = new_browser(), new_browser()
    for browser in browsers:
        complete_login(browser, totp_user.account, totp_secret, clock, trust=True)
    assert len(trust.active(totp_user)) == 2
    return browsers


def logged_out(browser) -> bool:
    return location(browser.get("/")) == "/login"


def test_unbind_ends_the_other_sessions_and_the_removed_apps_device(app, two_browsers, user, totp_secret, clock):
    phone = enrolled(app.test_client(), user)
    a, b = two_browsers

    done = a.post(f"{PAGE}/app/unbind", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=True)

    assert "解绑成功" in text(done)
    assert a.get("/").status_code == 200  # the browser that did it stays
    assert logged_out(b)
    assert trust.active(user) == []
    assert app_factor(user) is None and Device.select().where(Device.user == user).count() == 0
    response = phone.call("GET", "/challenges")
    assert (response.status_code, error_code(response)) == (401, "device_unknown")
    ended = LoginSession.select().where(LoginSession.ended_at.is_null(False))
    assert {session.end_reason for session in ended} == {"app unbound"}


def test_change_ends_the_other_sessions_once_the_new_factor_is_confirmed(two_browsers, user, totp_secret, clock):
    a, b = two_browsers
    dialog = a.post(f"{PAGE}/totp/change", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=True)
    assert "修改第三方 OTP" in text(dialog)
    assert not logged_out(b)  # an abandoned 修改 changes nothing

    new_secret = dialog_secret(dialog)
    assert "绑定成功" in text(confirm(a, dialog, clock.next_code(new_secret)))

    assert a.get("/").status_code == 200
    assert logged_out(b) and trust.active(user) == []
    b.post("/logout")
    assert location(b.login(user.account, PASSWORD)) == "/login/verify"  # no trusted device left
    refused = b.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)})
    assert refused.status_code == 400  # the old secret's codes are gone with it


@pytest.mark.parametrize(
    "change",
    [
        lambda account: accounts.reset_2fa(account, "lost phone, ticket 7"),
        lambda account: accounts.set_password(account, "Another-horse-7"),
        lambda account: accounts.set_disabled(account, True),
    ],
    ids=["admin-reset", "password", "disabled"],
)
def test_the_admins_changes_end_every_session(two_browsers, user, change):
    change(user.account)
    assert all(logged_out(browser) for browser in two_browsers)
    assert trust.active(user) == []
