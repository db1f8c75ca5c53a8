"""The browser's side of a scanned ticket: approvals.progress after the phone has decided."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import Factor, Ticket, TrustedDevice, utcnow
from portal.services import approvals, sessions, trust
from portal.services.errors import NotAllowed, NotFound
from portal.services.tickets import NewTicket
from tests.api.support import BROWSER, browser_session, fresh, new_ticket, session_of
from tests.helpers import openid_of


def login_attempt(user) -> tuple[str, object, NewTicket]:
    """A browser that passed the password step and shows the login QR: cookie, session, ticket."""
    cookie = sessions.start(user, sessions.SECOND_FACTOR, BROWSER)
    session = session_of(cookie)
    return cookie, session, approvals.start_login(session, "wechat", BROWSER)


def wechat_factor(user) -> Factor | None:
    return Factor.get_or_none((Factor.user == user) & (Factor.method == "wechat"))


def test_login_approved_with_trust(ctx, user, phone, owner):
    cookie, session, new = login_attempt(user)
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "pending"
    phone.preview(owner, new.token)
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "scanned"
    assert phone.approve(owner, new.token, True).status_code == 200

    done = approvals.progress(session, new.ticket.id, BROWSER)

    assert done.state == "done"
    assert done.step.stage == sessions.FULL
    assert done.step.token != cookie
    assert sessions.resolve(cookie) is None  # the session id rotated
    assert sessions.resolve(done.step.token).stage == sessions.FULL
    assert done.step.trust_token
    assert trust.is_trusted(done.step.trust_token, user)
    assert TrustedDevice.get().method == "wechat"

    again = approvals.progress(session, new.ticket.id, BROWSER)
    assert (again.state, again.step) == ("consumed", None)
    assert TrustedDevice.select().count() == 1


def test_login_approved_once_trusts_nothing(ctx, user, phone, owner):
    cookie, session, new = login_attempt(user)
    assert phone.approve(owner, new.token, False).status_code == 200
    done = approvals.progress(session, new.ticket.id, BROWSER)
    assert (done.state, done.step.stage, done.step.trust_token) == ("done", sessions.FULL, None)
    assert sessions.resolve(done.step.token).stage == sessions.FULL
    assert TrustedDevice.select().count() == 0
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "consumed"


def test_login_denied(ctx, user, phone, owner):
    cookie, session, new = login_attempt(user)
    assert phone.deny(owner, new.token).status_code == 200
    denied = approvals.progress(session, new.ticket.id, BROWSER)
    assert (denied.state, denied.step) == ("denied", None)
    assert denied.message
    assert sessions.resolve(cookie).stage == sessions.SECOND_FACTOR  # still half logged in
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "denied"
    assert fresh(new.ticket).state == "denied"


def test_an_unanswered_ticket_expires(ctx, user, owner):
    cookie, session, new = login_attempt(user)
    Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).where(Ticket.id == new.ticket.id).execute()
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "expired"
    assert sessions.resolve(cookie).stage == sessions.SECOND_FACTOR


def test_another_sessions_ticket_does_not_exist(ctx, user, phone, owner):
    _, session, new = login_attempt(user)
    _, other_session, _ = login_attempt(user)
    assert phone.approve(owner, new.token, True).status_code == 200
    with pytest.raises(NotFound):
        approvals.progress(other_session, new.ticket.id, BROWSER)
    with pytest.raises(NotFound):
        approvals.progress(session, new.ticket.id + 1000, BROWSER)
    assert fresh(new.ticket).state == "approved"  # still there for its own browser
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "done"


def test_login_qr_needs_a_bound_wechat(ctx, user):
    cookie = sessions.start(user, sessions.SECOND_FACTOR, BROWSER)
    with pytest.raises(NotAllowed):
        approvals.start_login(session_of(cookie), "wechat", BROWSER)


def test_bind_progress(ctx, user, phone, wx_login):
    session = browser_session(user)
    new = new_ticket(session, "bind")
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "pending"
    assert phone.confirm(wx_login("o-alice"), new.token).status_code == 200
    done = approvals.progress(session, new.ticket.id, BROWSER)
    assert (done.state, done.message, done.step) == ("done", "绑定成功", None)  # already full: same session
    assert openid_of(wechat_factor(user)) == "o-alice"
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "consumed"


def test_forced_binding_completes_the_login(ctx, user, phone, wx_login):
    cookie = sessions.start(user, sessions.BINDING, BROWSER)
    session = session_of(cookie)
    new = new_ticket(session, "bind")
    assert phone.confirm(wx_login("o-alice"), new.token).status_code == 200
    done = approvals.progress(session, new.ticket.id, BROWSER)
    assert done.state == "done"
    assert done.step.stage == sessions.FULL
    assert sessions.resolve(done.step.token).stage == sessions.FULL
    assert sessions.resolve(cookie) is None


def test_unbind_progress_removes_the_factor(ctx, user, phone, owner):
    session = browser_session(user)
    device = trust.issue(user, BROWSER, "wechat")
    new = approvals.start_verify(session, user, "wechat", "unbind", "wechat", BROWSER)
    assert phone.confirm(owner, new.token).status_code == 200
    assert wechat_factor(user) is not None  # the phone confirmed; the browser acts when it polls

    done = approvals.progress(session, new.ticket.id, BROWSER)

    assert (done.state, done.message) == ("done", "解绑成功")
    assert wechat_factor(user) is None
    assert not trust.is_trusted(device, user)
    assert phone.signed_out(owner)  # its token rested on the removed factor


def test_unbind_denied_keeps_the_factor(ctx, user, phone, owner):
    session = browser_session(user)
    new = approvals.start_verify(session, user, "wechat", "unbind", "wechat", BROWSER)
    assert phone.deny(owner, new.token).status_code == 200
    assert approvals.progress(session, new.ticket.id, BROWSER).state == "denied"
    assert openid_of(wechat_factor(user)) == "o-owner"


def test_rebind_from_scan_to_new_wechat(ctx, user, phone, owner, wx_login):
    session = browser_session(user)
    verify = approvals.start_verify(session, user, "wechat", "rebind", "wechat", BROWSER)
    assert phone.confirm(owner, verify.token).status_code == 200

    done = approvals.progress(session, verify.ticket.id, BROWSER)

    assert done.state == "done"
    new = done.next.state
    assert done.next.purpose == "rebind" and isinstance(new, NewTicket)
    assert new.ticket.purpose == "bind" and new.ticket.replaces
    assert openid_of(wechat_factor(user)) == "o-owner"  # 修改 half done: the old one still works
    newcomer = wx_login("o-new-phone")
    assert phone.confirm(newcomer, new.token).status_code == 200
    assert openid_of(wechat_factor(user)) == "o-new-phone"
    bound = approvals.progress(session, new.ticket.id, BROWSER)
    assert (bound.state, bound.message) == ("done", "绑定成功")
    assert phone.signed_out(owner)  # its token rested on the removed factor
    assert [row["account"] for row in phone.accounts(newcomer)] == [user.account]
