"""临时访问码: issued ≤ 24 h, one use (a conditional UPDATE, also under threads), revoked by a new one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import AuditEvent, LoginSession, MailOutbox, TemporaryAccessCode, utcnow
from portal.services import accounts, sessions, temporary_access
from portal.services.client import Client
from portal.services.errors import InvalidCode, InvalidInput, NotAllowed, NotFound
from tests.conftest import PASSWORD
from tests.helpers import run_threads

CLIENT = Client(ip="203.0.113.7", user_agent="pytest")


@pytest.fixture
def helpdesk(ctx):
    desk = accounts.create("desk@mail.xamd.edu.cn", PASSWORD, name="服务台")
    return accounts.set_role(desk.account, "helpdesk", by=None, client=CLIENT, reason="test")


def issue(user, helpdesk, minutes=None, reason="工单 #1024"):
    return temporary_access.issue(user, helpdesk, reason, minutes, CLIENT)


def pending_session(user) -> LoginSession:
    sessions.start(user, sessions.SECOND_FACTOR, CLIENT)
    return LoginSession.select().where(LoginSession.user == user).order_by(LoginSession.id.desc()).first()


def test_a_code_is_8_digits_shown_grouped_stored_only_as_a_hash(user, totp_secret, helpdesk):
    issued = issue(user, helpdesk)
    assert len(issued.code) == 9 and issued.code[4] == " " and issued.code.replace(" ", "").isdigit()
    row = TemporaryAccessCode.get()
    assert issued.code.replace(" ", "") not in row.code_hash and len(row.code_hash) == 64
    assert (row.issued_by, row.reason) == (helpdesk.account, "工单 #1024")
    assert abs((row.expires_at - utcnow()) - timedelta(hours=1)) < timedelta(seconds=5)  # 1 h by default
    event = AuditEvent.get(AuditEvent.event == "temporary_code_issued")
    assert event.user_id == user.id and f"by {helpdesk.account}" in event.detail and "工单 #1024" in event.detail


@pytest.mark.parametrize("minutes", ["240", "480", "1440", 60])
def test_a_lifetime_up_to_24_hours_may_be_chosen(user, totp_secret, helpdesk, minutes):
    issued = issue(user, helpdesk, minutes=minutes)
    assert abs((issued.expires_at - utcnow()) - timedelta(minutes=int(minutes))) < timedelta(seconds=5)


@pytest.mark.parametrize("minutes", ["1441", "2880", "0", "-60", "60.0", "６０", "abc", "30"])
def test_other_lifetimes_are_refused(user, totp_secret, helpdesk, minutes):
    with pytest.raises(InvalidInput):
        issue(user, helpdesk, minutes=minutes)
    assert not TemporaryAccessCode.select().exists()


@pytest.mark.parametrize("reason", ["", "   ", "x" * 201])
def test_a_reason_is_required(user, totp_secret, helpdesk, reason):
    with pytest.raises(InvalidInput):
        issue(user, helpdesk, reason=reason)
    assert not TemporaryAccessCode.select().exists()


def test_no_code_for_staff_for_disabled_accounts_or_without_a_factor(user, helpdesk, totp_secret):
    with pytest.raises(NotAllowed):
        issue(helpdesk, helpdesk)  # staff: never
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    with pytest.raises(NotAllowed):
        issue(bob, helpdesk)  # nothing to skip: he logs in without a second step
    accounts.set_disabled(user.account, True, by=helpdesk, client=CLIENT)
    with pytest.raises(NotAllowed):
        issue(accounts.get(user.account), helpdesk)


def test_a_code_works_once(user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code
    assert temporary_access.active(user) is not None
    assert temporary_access.consume(user, code)
    assert not temporary_access.consume(user, code)
    assert temporary_access.active(user) is None and not temporary_access.offered(user)


@pytest.mark.parametrize("shape", ["{a}-{b}", "{a}{b}", " {a} {b} "])
def test_spaces_and_a_hyphen_may_separate_the_groups(user, totp_secret, helpdesk, shape):
    a, b = issue(user, helpdesk).code.split()
    assert temporary_access.consume(user, shape.format(a=a, b=b))


def test_anything_but_8_ascii_digits_is_no_code(user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code.replace(" ", "")
    fullwidth = "".join(chr(ord(ch) + 0xFEE0) for ch in code)
    for wrong in (fullwidth, code + "0", code[:7], f"{code[:4]}\u00a0{code[4:]}", "", None):
        assert not temporary_access.consume(user, wrong), wrong
    assert temporary_access.consume(user, code)


def test_an_expired_code_is_refused(user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code
    TemporaryAccessCode.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert temporary_access.active(user) is None
    assert not temporary_access.consume(user, code)


def test_a_new_code_revokes_the_unused_one(user, totp_secret, helpdesk):
    first = issue(user, helpdesk).code
    second = issue(user, helpdesk).code
    assert not temporary_access.consume(user, first)
    assert TemporaryAccessCode.select().where(TemporaryAccessCode.revoked_at.is_null(False)).count() == 1
    assert temporary_access.consume(user, second)


def test_revoke_ends_the_active_code_and_is_audited(user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code
    temporary_access.revoke(user, helpdesk, CLIENT)
    assert not temporary_access.consume(user, code)
    assert AuditEvent.get(AuditEvent.event == "temporary_code_revoked").detail == f"by {helpdesk.account}"
    with pytest.raises(NotFound):
        temporary_access.revoke(user, helpdesk, CLIENT)


def test_a_code_is_one_users_only(user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    assert not temporary_access.consume(bob, code)
    assert temporary_access.consume(user, code)


def test_threads_racing_on_one_code_exactly_one_wins(app, user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code
    results = run_threads(app, 6, lambda _: temporary_access.consume(user, code))
    assert sorted(results, key=str) == sorted([("ok", False)] * 5 + [("ok", True)], key=str)
    assert TemporaryAccessCode.get().used_at is not None


def test_threads_racing_to_sign_in_with_one_code_one_session_passes(app, user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code
    logins = [pending_session(user) for _ in range(4)]

    def sign_in(index: int):
        try:
            return temporary_access.sign_in(logins[index], code, CLIENT)
        except InvalidCode:
            return None

    results = run_threads(app, 4, sign_in)
    assert [status for status, _ in results] == ["ok"] * 4
    assert sum(1 for _, token in results if token) == 1
    assert LoginSession.select().where(LoginSession.stage == sessions.BINDING).count() == 1
    assert AuditEvent.select().where(AuditEvent.event == "temporary_code_used").count() == 1


def test_sign_in_moves_the_session_to_binding_and_a_wrong_code_counts(app, user, totp_secret, helpdesk):
    code = issue(user, helpdesk).code
    login = pending_session(user)
    with pytest.raises(InvalidCode):
        temporary_access.sign_in(login, "00000000" if code != "0000 0000" else "11111111", CLIENT)
    fails = AuditEvent.select().where((AuditEvent.event == "login_verify") & (AuditEvent.outcome == "fail"))
    assert fails.count() == 1 and fails.get().method == "temporary"
    assert temporary_access.sign_in(login, code, CLIENT)
    assert (login.stage, login.second_step) == (sessions.BINDING, "temporary")
    assert temporary_access.in_session(login) and temporary_access.awaiting_new_factor(login)


def test_issue_and_use_are_noticed_by_mail(app, user, totp_secret, helpdesk):
    app.config["SMTP_URL"] = "smtp://127.0.0.1:1"  # a mail server is configured: notices go to the outbox
    code = issue(user, helpdesk).code
    temporary_access.sign_in(pending_session(user), code, CLIENT)
    subjects = [row.subject for row in MailOutbox.select().where(MailOutbox.recipient == user.account)]
    assert any("签发了一个临时访问码" in s for s in subjects), subjects
    assert any("使用临时访问码通过了二次验证" in s for s in subjects), subjects


def test_a_temporary_code_session_cannot_become_full_without_binding(user, totp_secret, helpdesk):
    from portal.services import login

    login_session = pending_session(user)
    temporary_access.sign_in(login_session, issue(user, helpdesk).code, CLIENT)
    with pytest.raises(NotAllowed):  # the lost 第三方 OTP is still bound: no proof of this session
        login.finish_forced_binding(login_session, CLIENT)
    assert LoginSession.get_by_id(login_session.id).stage == sessions.BINDING
    sessions.mark_verified(login_session, "totp")  # what binding or changing a factor in it does
    assert login.finish_forced_binding(login_session, CLIENT)
    assert LoginSession.get_by_id(login_session.id).stage == sessions.FULL
