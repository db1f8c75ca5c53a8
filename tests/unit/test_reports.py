"""Admin reports: adoption, pending forced binding, lockouts by account and by IP, recent failures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import User, utcnow
from portal.services import accounts, audit, policy, reports, throttle
from portal.services.errors import Throttled
from tests.conftest import PASSWORD


def test_binding_pending_follows_the_forced_binding_policy(user, totp_secret):
    accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    assert reports.adoption().binding_pending == 0
    accounts.create("root@mail.xamd.edu.cn", PASSWORD, admin=True)  # admins must always bind
    assert reports.adoption().binding_pending == 1
    policy.set_value("force_2fa", "all")
    assert reports.adoption().binding_pending == 2  # bob and the admin; alice has bound
    assert (reports.adoption().protected, reports.adoption().percent) == (1, 33)


def test_no_accounts_is_zero_percent(ctx):
    assert reports.adoption().percent == 0


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=2, THROTTLE_IP_FAILURES=3)
def test_lockouts_list_accounts_and_addresses_at_their_limit(ctx):
    now = utcnow()
    for account in ("a@x.cn", "a@x.cn", "b@x.cn"):
        throttle.begin("mail", account, "203.0.113.5", now=now)
    with pytest.raises(Throttled):
        throttle.begin("mail", "c@x.cn", "203.0.113.5", now=now)
    locked = {(lock.scope, lock.key) for lock in reports.lockouts(now)}
    assert locked == {("mail:acct", "a@x.cn"), ("mail:ip", "203.0.113.5")}
    assert all(now < lock.until <= now + timedelta(minutes=15) for lock in reports.lockouts(now))


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=2)
def test_a_cap_reached_is_no_lockout(ctx):
    """App pushes and mailed codes are capped on the same counters; reaching a cap locks nobody."""
    for _ in range(2):
        throttle.spend("push", "a@x.cn", "203.0.113.5", 2, 30, what="发送授权请求")
    with pytest.raises(Throttled):
        throttle.spend("push", "a@x.cn", "203.0.113.5", 2, 30, what="发送授权请求")
    assert reports.lockouts() == []
    assert throttle.locked_until("otp", "a@x.cn", "203.0.113.5") is None


def test_recent_failures_leave_out_successes(user):
    audit.record("login_password", user=user)
    audit.record("login_password", user=user, outcome="fail")
    audit.record("push", user=user, outcome="not_me")
    assert [e.outcome for e in reports.recent_failures()] == ["not_me", "fail"]


@pytest.mark.parametrize("mode", ["off", "listed", "all"])
def test_binding_pending_counts_whom_must_bind_names(ctx, mode):
    policy.set_value("force_2fa", mode)
    for i, (admin, listed) in enumerate([(False, False), (False, True), (True, False), (True, True)]):
        user = accounts.create(f"u{i}@x.cn", PASSWORD, admin=admin)
        accounts.set_policy(user.account, force=listed)
    expected = sum(policy.must_bind(user) for user in User.select())
    assert reports.adoption().binding_pending == expected == {"off": 2, "listed": 3, "all": 4}[mode]
