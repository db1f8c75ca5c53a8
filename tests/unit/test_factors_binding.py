"""绑定 / 修改 / 解绑 of 第三方 OTP (invariants 3, 7, 9, 10)."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest

from portal import crypto
from portal.models import AuditEvent, Enrollment, Factor, Grant, utcnow
from portal.services import factors, policy, sessions, throttle, trust
from portal.services.errors import Conflict, Expired, InvalidCode, NotAllowed, NotFound, Throttled
from portal.services.factors import totp as totp_method
from tests.unit.conftest import run_threads, wrong_code


@pytest.fixture
def totp_offered(ctx):
    policy.set_value("enabled_methods", "app,wechat,totp")


def _events(name: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.event == name).order_by(AuditEvent.id))


def _factor(user) -> Factor | None:
    return Factor.get_or_none((Factor.user == user) & (Factor.method == "totp"))


def _other_session(user, client):
    return sessions.resolve(sessions.start(user, sessions.FULL, client))


# --- 绑定 --------------------------------------------------------------------------------------


def test_begin_totp_needs_the_method_to_be_offered(user, full_session):
    with pytest.raises(NotAllowed):
        totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    assert Enrollment.select().count() == 0


def test_begin_totp_makes_a_pending_enrollment(user, full_session, totp_offered, app):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    assert enrollment.purpose == "bind"
    parsed = pyotp.parse_uri(enrollment.uri)
    assert parsed.secret == enrollment.secret
    assert parsed.name == user.account
    assert parsed.issuer == app.config["ORG_NAME"]
    row = Enrollment.get_by_id(enrollment.id)
    assert enrollment.secret not in row.secret  # encrypted at rest
    assert crypto.decrypt(row.secret) == enrollment.secret
    assert _factor(user) is None  # nothing bound yet


def test_begin_totp_again_replaces_the_pending_enrollment(user, full_session, totp_offered):
    first = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    second = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    assert first.secret != second.secret
    assert [e.id for e in Enrollment.select()] == [second.id]


def test_begin_totp_when_already_bound_is_a_conflict(user, totp_secret, full_session, totp_offered):
    with pytest.raises(Conflict):
        totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))


def test_wrong_code_keeps_the_enrollment(user, full_session, totp_offered, clock, client):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    with pytest.raises(InvalidCode):
        totp_method.confirm(full_session, user, enrollment.id, wrong_code(enrollment.secret, clock), client)
    with pytest.raises(InvalidCode):
        totp_method.confirm(full_session, user, enrollment.id, "12 34", client)
    assert _factor(user) is None
    again = totp_method.pending(full_session, enrollment.id)
    assert (again.id, again.secret, again.purpose) == (enrollment.id, enrollment.secret, "bind")
    assert throttle.failures("otp", user.account) == 2
    assert _events("factor_bind")[0].outcome == "fail"
    totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    assert _factor(user) is not None


@pytest.mark.parametrize("raw", ["", None, "12345", "１２３４５６", "12\t3456"])
def test_malformed_confirmation_code_counts_and_is_audited(user, full_session, totp_offered, clock, client, raw):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    with pytest.raises(InvalidCode):
        totp_method.confirm(full_session, user, enrollment.id, raw, client)
    assert throttle.failures("otp", user.account) == 1
    event = _events("factor_bind")[0]
    assert (event.outcome, event.ip, event.detail) == ("fail", client.ip, "invalid_code")
    assert totp_method.pending(full_session, enrollment.id) is not None


def test_locked_account_cannot_confirm_a_binding(user, full_session, totp_offered, clock, client, app):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    for _ in range(int(app.config["THROTTLE_ACCOUNT_FAILURES"])):
        with pytest.raises(InvalidCode):
            totp_method.confirm(full_session, user, enrollment.id, wrong_code(enrollment.secret, clock), client)
    with pytest.raises(Throttled):
        totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    assert _factor(user) is None


def test_correct_code_binds_and_cannot_be_replayed_at_login(user, full_session, totp_offered, clock, client):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    code = clock.code(enrollment.secret)
    factor = totp_method.confirm(full_session, user, enrollment.id, code, client)
    stored = _factor(user)
    assert stored.id == factor.id
    assert enrollment.secret not in stored.secret  # encrypted at rest
    assert crypto.decrypt(stored.secret) == enrollment.secret
    assert stored.last_used_step == clock.step
    assert Enrollment.select().count() == 0
    assert totp_method.pending(full_session, enrollment.id) is None
    with pytest.raises(InvalidCode) as info:
        factors.verify(user, "totp", code, client, "login")
    assert info.value.code == "code_reused"
    clock.advance(1)
    factors.verify(user, "totp", clock.code(enrollment.secret), client, "login")
    assert [e.method for e in _events("factor_bound")] == ["totp"]
    assert throttle.failures("otp", user.account) == 1  # only the replay


def test_confirming_twice_is_refused(user, full_session, totp_offered, clock, client):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    clock.advance(1)
    with pytest.raises(Expired):
        totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    assert Factor.select().count() == 1


def test_expired_enrollment_is_refused(user, full_session, totp_offered, clock, client):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    Enrollment.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    with pytest.raises(Expired):
        totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    assert totp_method.pending(full_session, enrollment.id) is None
    assert _factor(user) is None


def test_enrollment_of_another_session_is_refused(user, full_session, totp_offered, clock, client):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    other = _other_session(user, client)
    with pytest.raises(Expired):
        totp_method.confirm(other, user, enrollment.id, clock.code(enrollment.secret), client)
    assert totp_method.pending(other, enrollment.id) is None
    assert _factor(user) is None
    assert Enrollment.select().count() == 1


def test_enrollment_bound_in_two_sessions_binds_once(user, full_session, totp_offered, clock, client):
    first = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    other = _other_session(user, client)
    second = totp_method.begin(other, user, factors.binding_purpose(other, user, "totp"))
    totp_method.confirm(full_session, user, first.id, clock.code(first.secret), client)
    with pytest.raises(Conflict):
        totp_method.confirm(other, user, second.id, clock.code(second.secret), client)
    assert crypto.decrypt(_factor(user).secret) == first.secret


def test_concurrent_confirmation_binds_exactly_once(app, user, full_session, totp_offered, clock, client):
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    code = clock.code(enrollment.secret)
    session_id, user_id = full_session.id, user.id

    def confirm(_):
        from portal.models import LoginSession, User

        return totp_method.confirm(
            LoginSession.get_by_id(session_id), User.get_by_id(user_id), enrollment.id, code, client
        ).id

    results = run_threads(app, 6, confirm)
    assert [kind for kind, _ in results].count("ok") == 1, results
    assert all(isinstance(e, (Expired, Conflict)) for kind, e in results if kind == "error"), results
    assert Factor.select().count() == 1
    assert len(_events("factor_bound")) == 1


# --- 修改 ------------------------------------------------------------------------------------


def test_change_keeps_the_old_secret_until_the_new_one_is_confirmed(
    user, totp_secret, full_session, totp_offered, clock, client
):
    device = trust.issue(user, client, "totp")
    factors.authorize_change(full_session, user, "totp", "totp", clock.code(totp_secret), client)
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    assert enrollment.purpose == "rebind"
    assert enrollment.secret != totp_secret
    # Abandoned so far: the old factor still works, the trusted device too.
    clock.advance(1)
    factors.verify(user, "totp", clock.code(totp_secret), client, "login")
    assert trust.is_trusted(device, user)
    # The new secret confirms the change; the old one stops working.
    clock.advance(1)
    totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    assert crypto.decrypt(_factor(user).secret) == enrollment.secret
    assert Factor.select().where(Factor.user == user).count() == 1
    clock.advance(1)
    with pytest.raises(InvalidCode):
        factors.verify(user, "totp", clock.code(totp_secret), client, "login")
    factors.verify(user, "totp", clock.code(enrollment.secret), client, "login")
    assert not trust.is_trusted(device, user), "修改 revokes trusted devices"
    assert [e.method for e in _events("factor_changed")] == ["totp"]
    assert _events("factor_bound") == []
    assert [e.outcome for e in _events("change_verify")] == ["ok"]


def test_abandoned_change_leaves_the_old_factor(user, totp_secret, full_session, totp_offered, clock, client):
    factors.authorize_change(full_session, user, "totp", "totp", clock.code(totp_secret), client)
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    Enrollment.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    with pytest.raises(Expired):
        totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    clock.advance(1)
    factors.verify(user, "totp", clock.code(totp_secret), client, "login")
    assert crypto.decrypt(_factor(user).secret) == totp_secret


def test_change_needs_a_valid_code(user, totp_secret, full_session, totp_offered, clock, client):
    with pytest.raises(InvalidCode):
        factors.authorize_change(full_session, user, "totp", "totp", wrong_code(totp_secret, clock), client)
    assert Grant.select().count() == 0
    with pytest.raises(Conflict):
        totp_method.begin(
            full_session, user, factors.binding_purpose(full_session, user, "totp")
        )  # no grant: plain 绑定 of a bound method


def test_change_of_an_unbound_method_is_not_found(user, full_session, totp_offered, clock, client):
    with pytest.raises(NotFound):
        factors.authorize_change(full_session, user, "totp", "totp", "123456", client)


def test_change_grant_is_single_use(user, totp_secret, full_session, totp_offered, clock, client):
    factors.authorize_change(full_session, user, "totp", "totp", clock.code(totp_secret), client)
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    assert Grant.get().used_at is not None
    with pytest.raises(Conflict):
        totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))


def test_change_grant_belongs_to_its_session(user, totp_secret, full_session, totp_offered, clock, client):
    factors.authorize_change(full_session, user, "totp", "totp", clock.code(totp_secret), client)
    other = _other_session(user, client)
    with pytest.raises(Conflict):
        totp_method.begin(other, user, factors.binding_purpose(other, user, "totp"))


def test_change_grant_expires(user, totp_secret, full_session, totp_offered, clock, client):
    factors.authorize_change(full_session, user, "totp", "totp", clock.code(totp_secret), client)
    enrollment = totp_method.begin(full_session, user, factors.binding_purpose(full_session, user, "totp"))
    Grant.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    with pytest.raises(Expired):
        totp_method.confirm(full_session, user, enrollment.id, clock.code(enrollment.secret), client)
    assert crypto.decrypt(_factor(user).secret) == totp_secret
    assert totp_method.pending(full_session, enrollment.id) is not None, "nothing half-written"


# --- 解绑 ------------------------------------------------------------------------------------


def test_unbind_requires_a_valid_code(user, totp_secret, full_session, clock, client):
    for bad in (wrong_code(totp_secret, clock), "", None, "１２３４５６"):
        with pytest.raises(InvalidCode):
            factors.unbind(full_session, user, "totp", "totp", bad, client)
    assert _factor(user) is not None
    assert _events("factor_unbound") == []


def test_unbind_removes_the_factor_and_revokes_trusted_devices(user, totp_secret, full_session, clock, client):
    device = trust.issue(user, client, "totp")
    factors.unbind(full_session, user, "totp", "totp", clock.code(totp_secret), client)
    assert _factor(user) is None
    assert not trust.is_trusted(device, user)
    event = _events("factor_unbound")[0]
    assert (event.method, event.ip, event.detail) == ("totp", client.ip, "verified by totp")
    assert _events("unbind_verify")[0].outcome == "ok"


def test_unbind_of_an_unbound_method_is_not_found(user, full_session, client):
    with pytest.raises(NotFound):
        factors.unbind(full_session, user, "totp", "totp", "123456", client)


@pytest.mark.parametrize("make_forced", ["admin", "all", "listed"])
def test_forced_user_cannot_unbind_the_only_factor(user, totp_secret, full_session, clock, client, make_forced):
    from portal.models import User

    if make_forced == "admin":
        User.update(role="admin").where(User.id == user.id).execute()
    elif make_forced == "all":
        policy.set_value("force_2fa", "all")
    else:
        policy.set_value("force_2fa", "listed")
        User.update(force_2fa=True).where(User.id == user.id).execute()
    user = User.get_by_id(user.id)
    with pytest.raises(NotAllowed):
        factors.unbind(full_session, user, "totp", "totp", clock.code(totp_secret), client)
    assert _factor(user) is not None
    assert Factor.get_by_id(_factor(user).id).last_used_step is None, "the code was not even spent"


def test_unbind_via_a_method_that_is_not_bound_is_refused(user, totp_secret, full_session, clock, client):
    method = next(m for m in factors.METHODS if m != "totp")
    with pytest.raises(InvalidCode):
        factors.unbind(full_session, user, "totp", method, clock.code(totp_secret), client)
    assert _factor(user) is not None
    assert throttle.failures("otp", user.account) == 1


def test_overview_lists_every_method_in_order(user, totp_secret, totp_offered):
    rows = factors.overview(user)
    assert [r.method.key for r in rows] == list(factors.METHODS)
    by_key = {r.method.key: r for r in rows}
    assert by_key["totp"].factor is not None and by_key["totp"].offered
    assert by_key["app"].factor is None and by_key["app"].offered  # self-service, as the manual says
    assert by_key["email"].factor is None and not by_key["email"].offered  # not enabled for this user
    assert factors.bound_methods(user) == ["totp"]
