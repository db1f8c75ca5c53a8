"""Invariant 13: a lock, a disabled account or an ended session closes every way in at once.

The account's second step is locked by wrong codes (or its browser's IP is); then no phone approval
goes through (WeChat scan, App push, App QR, bind / unbind / rebind confirmations), and an approval
given before the lock does not log the browser in either. The phone is told why in the envelope.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import Factor, LoginSession, Ticket, utcnow
from portal.services import accounts, approvals, factors, sessions, throttle
from portal.services.client import Client
from portal.services.errors import InvalidCode, Throttled
from tests.api.app_support import AppDevice, app_ticket, enrolled, second_step_session
from tests.api.support import BROWSER, browser_session, error_code, fresh, new_ticket


@pytest.fixture
def device(ctx, app, user) -> AppDevice:
    """alice has bound the 邮箱安全 App too."""
    return enrolled(app.test_client(), user)


def lock_second_step(user, ip: str = BROWSER.ip) -> None:
    """Wrong codes until the account's second step is locked (the way an attacker would)."""
    for _ in range(100):
        try:
            factors.verify(user, "totp", "000000", Client(ip=ip), "login")
        except Throttled:
            return
        except InvalidCode:
            continue
    raise AssertionError("never locked")


@pytest.fixture
def locked(user, totp_secret):
    """Return a function that locks alice's second step (alice has 第三方 OTP to guess at)."""
    return lambda ip=BROWSER.ip: lock_second_step(user, ip)


def assert_locked_out(response) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert error_code(response) == "account_locked"
    assert "请于" in response.get_json()["error"]["message"]


def test_a_lock_stops_a_login_qr_already_open(user, phone, owner, locked):
    session = second_step_session(user)
    qr = new_ticket(session, "login")  # the page was open before the lock
    locked()

    assert_locked_out(phone.approve(owner, qr.token))

    assert fresh(qr.ticket).state == "pending"
    assert approvals.progress(session, qr.ticket.id, BROWSER).state == "pending"
    assert LoginSession.get_by_id(session.id).stage == sessions.SECOND_FACTOR
    accounts.unlock(user.account)  # the admin (or the window's end) lifts it: the QR works again
    assert phone.approve(owner, qr.token).status_code == 200
    assert approvals.progress(session, qr.ticket.id, BROWSER).state == "done"


def test_an_approval_given_before_the_lock_does_not_complete_after_it(user, phone, owner, locked):
    session = second_step_session(user)
    qr = new_ticket(session, "login")
    assert phone.approve(owner, qr.token).status_code == 200
    locked()

    progress = approvals.progress(session, qr.ticket.id, BROWSER)

    assert progress.state == "refused" and progress.step is None and "锁定" in progress.message
    assert LoginSession.get_by_id(session.id).stage == sessions.SECOND_FACTOR
    assert fresh(qr.ticket).state == "approved"  # not used up: nothing was half done


@pytest.mark.parametrize("purpose", ["unbind", "rebind"])
def test_a_lock_stops_unbind_and_rebind_confirmations(user, phone, owner, locked, purpose):
    qr = new_ticket(browser_session(user), purpose, target="wechat")
    locked()
    assert_locked_out(phone.confirm(owner, qr.token))
    assert Factor.of(user, "wechat") is not None


def test_a_lock_stops_a_bind_confirmation(user, phone, wx_login, locked):
    qr = new_ticket(browser_session(user), "bind")
    locked()
    assert_locked_out(phone.confirm(wx_login("o-newcomer"), qr.token))
    assert Factor.of(user, "wechat") is None


def test_a_lock_stops_the_app_push_and_the_app_qr(user, device, locked):
    session = second_step_session(user)
    push = approvals.start_login(session, "app", BROWSER, "push")
    qr = app_ticket(second_step_session(user), "login")
    locked()

    assert_locked_out(device.approve(push.ticket.id, push.ticket.match_number))
    assert_locked_out(device.scan(qr.token))
    assert fresh(push.ticket).state == fresh(qr.ticket).state == "pending"


def test_a_lock_stops_enrolling_an_app(app, user, locked):
    qr = app_ticket(browser_session(user), "bind")
    locked()
    assert_locked_out(AppDevice(app.test_client()).enroll(qr.token))
    assert Factor.of(user, "app") is None


def test_a_locked_browser_address_is_locked_for_approvals_too(app, user, phone, owner):
    """Wrong codes for many accounts from the browser's IP lock that IP: its QR is refused as well."""
    session = second_step_session(user)
    qr = new_ticket(session, "login")
    for _ in range(int(app.config["THROTTLE_IP_FAILURES"])):
        throttle.begin("otp", f"someone{_}@mail.xamd.edu.cn", BROWSER.ip)
    assert_locked_out(phone.approve(owner, qr.token))
    elsewhere = Client(ip="203.0.113.9")
    other = new_ticket(second_step_session(user, elsewhere), "login", client=elsewhere)
    assert phone.approve(owner, other.token).status_code == 200  # another address is not locked


def test_a_disabled_account_closes_its_open_tickets(user, phone, owner, device):
    qr = new_ticket(second_step_session(user), "login")
    push = approvals.start_login(second_step_session(user), "app", BROWSER, "push")
    accounts.set_disabled(user.account, True)

    for response in (phone.approve(owner, qr.token), device.approve(push.ticket.id, push.ticket.match_number)):
        assert (response.status_code, error_code(response)) == (409, "session_ended")
    assert fresh(qr.ticket).state == fresh(push.ticket).state == "pending"


def test_a_half_logged_in_session_past_its_10_minutes_is_dead_for_the_phone(user, phone, owner):
    session = second_step_session(user)
    qr = new_ticket(session, "login")
    LoginSession.update(created_at=utcnow() - timedelta(minutes=10)).where(LoginSession.id == session.id).execute()

    response = phone.approve(owner, qr.token)

    assert (response.status_code, error_code(response)) == (409, "session_ended")
    assert LoginSession.get_by_id(session.id).end_reason == "pending_expired"
    assert Ticket.get_by_id(qr.ticket.id).state == "pending"
