"""The login service: password step, second step, trusted devices, forced binding (invariants 1, 2)."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent, LoginSession, User
from portal.services import accounts, factors, login, policy, sessions, throttle, trust
from portal.services.errors import Conflict, InvalidCode, InvalidCredentials, NotAllowed
from portal.services.factors import totp as totp_method
from tests.conftest import PASSWORD
from tests.unit.conftest import wrong_code


def test_wrong_password_and_unknown_account_look_the_same(user, client):
    with pytest.raises(InvalidCredentials) as wrong:
        login.password_step(user.account, "Wrong-horse-9", client, None, None)
    with pytest.raises(InvalidCredentials) as unknown:
        login.password_step("nobody@mail.xamd.edu.cn", PASSWORD, client, None, None)
    assert (wrong.value.message, wrong.value.code, wrong.value.status) == (
        unknown.value.message,
        unknown.value.code,
        unknown.value.status,
    )
    assert LoginSession.select().count() == 0
    events = AuditEvent.select().where(AuditEvent.event == "login_password").order_by(AuditEvent.id)
    assert [(e.account, e.outcome) for e in events] == [
        (user.account, "fail"),
        ("nobody@mail.xamd.edu.cn", "fail"),
    ]
    assert throttle.failures("password", user.account) == 1
    assert throttle.failures("password", "nobody@mail.xamd.edu.cn") == 1


def test_disabled_account_is_refused_like_a_wrong_password(user, client):
    accounts.set_disabled(user.account, True)
    with pytest.raises(InvalidCredentials) as info:
        login.password_step(user.account, PASSWORD, client, None, None)
    assert info.value.message == "账号或密码错误"
    assert LoginSession.select().count() == 0


def test_account_is_normalised(user, client):
    step = login.password_step("  ALICE@Mail.xamd.edu.cn ", PASSWORD, client, None, None)
    assert sessions.resolve(step.token).user.id == user.id


def test_no_factor_goes_straight_to_full(user, client):
    step = login.password_step(user.account, PASSWORD, client, None, None)
    assert step.stage == sessions.FULL
    assert step.trust_token is None
    assert sessions.resolve(step.token).stage == sessions.FULL


def test_bound_factor_needs_the_second_step(user, totp_secret, client):
    step = login.password_step(user.account, PASSWORD, client, None, None)
    assert step.stage == sessions.SECOND_FACTOR
    assert sessions.resolve(step.token).stage == sessions.SECOND_FACTOR


def test_trusted_device_skips_the_second_step(user, totp_secret, client):
    device = trust.issue(user, client, "totp")
    assert login.password_step(user.account, PASSWORD, client, None, device).stage == sessions.FULL


def test_trusted_device_of_another_user_does_not_skip(user, totp_secret, client):
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    device = trust.issue(bob, client, "totp")
    assert login.password_step(user.account, PASSWORD, client, None, device).stage == sessions.SECOND_FACTOR


def test_revoked_trusted_device_does_not_skip(user, totp_secret, client):
    device = trust.issue(user, client, "totp")
    trust.revoke_all(user, "test")
    assert login.password_step(user.account, PASSWORD, client, None, device).stage == sessions.SECOND_FACTOR


@pytest.mark.parametrize(
    ("mode", "listed", "admin", "stage"),
    [
        ("off", False, False, sessions.FULL),
        ("off", False, True, sessions.BINDING),
        ("all", False, False, sessions.BINDING),
        ("listed", False, False, sessions.FULL),
        ("listed", True, False, sessions.BINDING),
    ],
)
def test_forced_binding_stage(user, client, mode, listed, admin, stage):
    policy.set_value("force_2fa", mode)
    User.update(force_2fa=listed, role="admin" if admin else "").where(User.id == user.id).execute()
    assert login.password_step(user.account, PASSWORD, client, None, None).stage == stage


def test_password_step_rotates_the_session(user, client):
    first = login.password_step(user.account, PASSWORD, client, None, None)
    second = login.password_step(user.account, PASSWORD, client, sessions.resolve(first.token), None)
    assert first.token != second.token
    assert sessions.resolve(first.token) is None
    assert sessions.resolve(second.token) is not None


def test_second_step_completes_the_login_under_a_new_token(user, totp_secret, clock, client):
    step = login.password_step(user.account, PASSWORD, client, None, None)
    session = sessions.resolve(step.token)
    done = login.second_step(session, "totp", clock.code(totp_secret), False, client)
    assert (done.stage, done.trust_token) == (sessions.FULL, None)
    assert done.token != step.token
    assert sessions.resolve(step.token) is None
    assert sessions.resolve(done.token).stage == sessions.FULL
    event = AuditEvent.get(AuditEvent.event == "login_complete")
    assert (event.method, event.user_id) == ("totp", user.id)


def test_second_step_can_trust_the_device(user, totp_secret, clock, client):
    step = login.password_step(user.account, PASSWORD, client, None, None)
    done = login.second_step(sessions.resolve(step.token), "totp", clock.code(totp_secret), True, client)
    assert trust.is_trusted(done.trust_token, user)
    clock.advance(1)
    again = login.password_step(user.account, PASSWORD, client, None, done.trust_token)
    assert again.stage == sessions.FULL


def test_second_step_with_a_wrong_code_stays_half_logged_in(user, totp_secret, clock, client):
    step = login.password_step(user.account, PASSWORD, client, None, None)
    session = sessions.resolve(step.token)
    with pytest.raises(InvalidCode):
        login.second_step(session, "totp", wrong_code(totp_secret, clock), True, client)
    assert sessions.resolve(step.token).stage == sessions.SECOND_FACTOR
    assert trust.active(user) == []


def test_second_step_is_refused_when_not_pending(user, clock, client):
    step = login.password_step(user.account, PASSWORD, client, None, None)
    with pytest.raises(Conflict) as info:
        login.second_step(sessions.resolve(step.token), "totp", "123456", False, client)
    assert info.value.code == "not_pending"


def test_second_step_code_cannot_complete_two_logins(user, totp_secret, clock, client):
    code = clock.code(totp_secret)
    one = sessions.resolve(login.password_step(user.account, PASSWORD, client, None, None).token)
    two = sessions.resolve(login.password_step(user.account, PASSWORD, client, None, None).token)
    login.second_step(one, "totp", code, False, client)
    with pytest.raises(InvalidCode):
        login.second_step(two, "totp", code, False, client)
    assert two.stage == sessions.SECOND_FACTOR


def test_finish_forced_binding(user, clock, client):
    policy.set_value("force_2fa", "all")
    policy.set_value("enabled_methods", "totp")
    step = login.password_step(user.account, PASSWORD, client, None, None)
    session = sessions.resolve(step.token)
    assert session.stage == sessions.BINDING
    with pytest.raises(NotAllowed):
        login.finish_forced_binding(session, client)
    enrollment = totp_method.begin(session, user, factors.binding_purpose(session, user, "totp"))
    totp_method.confirm(session, user, enrollment.id, clock.code(enrollment.secret), client)
    token = login.finish_forced_binding(session, client)
    assert token and token != step.token
    assert sessions.resolve(step.token) is None
    assert sessions.resolve(token).stage == sessions.FULL


def test_finish_forced_binding_of_a_full_session_does_nothing(user, full_session, client):
    assert login.finish_forced_binding(full_session, client) is None


def test_logout_ends_the_session(user, client):
    step = login.password_step(user.account, PASSWORD, client, None, None)
    login.logout(sessions.resolve(step.token), client)
    assert sessions.resolve(step.token) is None
    assert AuditEvent.select().where(AuditEvent.event == "logout").count() == 1
