"""Failure throttling per account and per IP, in the database, with atomic counters (invariant 5)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from portal import config as config_module
from portal.models import ThrottleCounter
from portal.services import accounts, factors, login, passwords, throttle
from portal.services.client import Client
from portal.services.errors import InvalidCode, InvalidCredentials, Throttled, Unavailable
from tests.conftest import PASSWORD
from tests.unit.conftest import run_threads, wrong_code

NOON = datetime(2026, 3, 2, 12, 0, 0)  # the start of a 15-minute window


def _fail_password(account: str, client: Client) -> None:
    with pytest.raises(InvalidCredentials):
        login.password_step(account, "wrong password!", client, None, None)


def test_default_limits_allow_at_most_100_failures_per_account_per_hour():
    window = int(config_module.DEFAULTS["THROTTLE_WINDOW_MINUTES"])
    limit = int(config_module.DEFAULTS["THROTTLE_ACCOUNT_FAILURES"])
    assert 60 / window * limit <= 100
    # Stricter: any 60-minute span touches at most ceil(60/window)+1 fixed windows, and the
    # password and code steps count separately ("password" and "otp" scopes).
    assert (math.ceil(60 / window) + 1) * limit * 2 <= 100


def test_begin_reserves_and_success_releases(ctx, client):
    attempt = throttle.begin("otp", "alice@mail.xamd.edu.cn", client.ip, now=NOON)
    assert throttle.failures("otp", "alice@mail.xamd.edu.cn", now=NOON) == 1
    attempt.succeeded()
    assert throttle.failures("otp", "alice@mail.xamd.edu.cn", now=NOON) == 0
    attempt.succeeded()  # idempotent: nothing left to give back
    assert throttle.failures("otp", "alice@mail.xamd.edu.cn", now=NOON) == 0


def test_account_key_is_case_insensitive(ctx, client):
    throttle.begin("otp", "Alice@Mail.XAMD.edu.cn", client.ip, now=NOON)
    assert throttle.failures("otp", "alice@mail.xamd.edu.cn", now=NOON) == 1


def test_account_locks_after_the_limit_until_the_window_ends(ctx, app, client):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])
    for i in range(limit):
        throttle.begin("otp", "alice@x.cn", f"198.51.100.{i}", now=NOON)
    with pytest.raises(Throttled) as info:
        throttle.begin("otp", "alice@x.cn", "198.51.100.200", now=NOON + timedelta(minutes=1))
    assert info.value.retry_after == 14 * 60
    assert info.value.status == 429
    # Refused attempts neither extend nor grow the lockout.
    for _ in range(5):
        with pytest.raises(Throttled):
            throttle.begin("otp", "alice@x.cn", "198.51.100.200", now=NOON + timedelta(minutes=14))
    assert throttle.failures("otp", "alice@x.cn", now=NOON) == limit
    # The refused attempts did not take slots of the IP either.
    ip_rows = ThrottleCounter.select().where(
        (ThrottleCounter.scope == "otp:ip") & (ThrottleCounter.key == "198.51.100.200")
    )
    assert sum(row.failures for row in ip_rows) == 0
    # A new window starts afresh.
    throttle.begin("otp", "alice@x.cn", "198.51.100.200", now=NOON + timedelta(minutes=15))


def test_scopes_are_counted_separately(ctx, app, client):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])
    for _ in range(limit):
        throttle.begin("password", "alice@x.cn", "", now=NOON)
    with pytest.raises(Throttled):
        throttle.begin("password", "alice@x.cn", "", now=NOON)
    throttle.begin("otp", "alice@x.cn", "", now=NOON)


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=100, THROTTLE_IP_FAILURES=3)
def test_ip_limit_spans_accounts(ctx, client):
    for i in range(3):
        throttle.begin("password", f"user{i}@x.cn", client.ip, now=NOON)
    with pytest.raises(Throttled):
        throttle.begin("password", "fresh@x.cn", client.ip, now=NOON)
    # The refused attempt took no account slot; another IP is not affected.
    assert throttle.failures("password", "fresh@x.cn", now=NOON) == 0
    throttle.begin("password", "fresh@x.cn", "192.0.2.99", now=NOON)


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=100, THROTTLE_IP_FAILURES=3)
def test_ip_limit_blocks_a_correct_password_of_another_account(ctx, client):
    accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    for i in range(3):
        _fail_password(f"nobody{i}@mail.xamd.edu.cn", client)
    with pytest.raises(Throttled):
        login.password_step("bob@mail.xamd.edu.cn", PASSWORD, client, None, None)
    other = Client(ip="192.0.2.55", user_agent="other")
    assert login.password_step("bob@mail.xamd.edu.cn", PASSWORD, other, None, None).token


def test_empty_ip_is_not_a_shared_counter(ctx, app):
    limit = int(app.config["THROTTLE_IP_FAILURES"])
    for i in range(limit + 2):
        throttle.begin("otp", f"u{i}@x.cn", "", now=NOON)
    assert not ThrottleCounter.select().where(ThrottleCounter.scope == "otp:ip").exists()


def test_locked_account_refuses_a_correct_password_without_checking_it(user, app, client, monkeypatch):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])
    for i in range(limit):
        _fail_password(user.account, Client(ip=f"198.51.100.{i}"))
    checked = []
    real_verify = passwords.verify
    monkeypatch.setattr(passwords, "verify", lambda *a: checked.append(a) or real_verify(*a))
    with pytest.raises(Throttled):
        login.password_step(user.account, PASSWORD, client, None, None)
    with pytest.raises(Throttled):
        login.password_step(user.account.upper(), PASSWORD, client, None, None)
    assert checked == []


def test_locked_account_refuses_a_correct_code(user, totp_secret, clock, app, client):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])
    for _ in range(limit):
        with pytest.raises(InvalidCode):
            factors.verify(user, "totp", wrong_code(totp_secret, clock), client, "login")
    with pytest.raises(Throttled):
        factors.verify(user, "totp", clock.code(totp_secret), client, "login")


def test_successes_do_not_accumulate(user, app, client):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])
    for _ in range(limit + 5):
        login.password_step(user.account, PASSWORD, client, None, None)
    assert throttle.failures("password", user.account) == 0


def test_success_releases_only_its_own_slot(user, app, client):
    for _ in range(3):
        _fail_password(user.account, client)
    login.password_step(user.account, PASSWORD, client, None, None)
    assert throttle.failures("password", user.account) == 3


def test_unlock_clears_account_counters(user, app, client):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])
    for _ in range(limit):
        _fail_password(user.account, client)
    with pytest.raises(Throttled):
        login.password_step(user.account, PASSWORD, client, None, None)
    assert throttle.unlock(user.account.upper()) >= 1
    assert throttle.failures("password", user.account) == 0
    assert login.password_step(user.account, PASSWORD, client, None, None).token


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=1000, THROTTLE_IP_FAILURES=1000)
def test_parallel_wrong_guesses_are_all_counted(app, user, totp_secret, clock, client):
    threads, rounds = 8, 5
    bad = wrong_code(totp_secret, clock)

    def guess(_):
        from portal.models import User

        me = User.get_by_id(user.id)
        refused = 0
        for _ in range(rounds):
            try:
                factors.verify(me, "totp", bad, client, "login")
            except InvalidCode:
                refused += 1
        return refused

    results = run_threads(app, threads, guess)
    assert results == [("ok", rounds)] * threads
    assert throttle.failures("otp", user.account) == threads * rounds
    ip_row = ThrottleCounter.get(ThrottleCounter.scope == "otp:ip", ThrottleCounter.key == client.ip)
    assert ip_row.failures == threads * rounds


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=10, THROTTLE_IP_FAILURES=1000)
def test_parallel_guesses_never_exceed_the_limit(app, user, totp_secret, clock, client):
    threads, rounds = 8, 3
    bad = wrong_code(totp_secret, clock)

    def guess(_):
        from portal.models import User

        me = User.get_by_id(user.id)
        outcomes = []
        for _ in range(rounds):
            try:
                factors.verify(me, "totp", bad, client, "login")
            except (InvalidCode, Throttled) as exc:
                outcomes.append(type(exc).__name__)
        return outcomes

    results = run_threads(app, threads, guess)
    outcomes = [o for kind, found in results for o in found if kind == "ok"]
    assert all(kind == "ok" for kind, _ in results), results
    assert outcomes.count("InvalidCode") == 10
    assert outcomes.count("Throttled") == threads * rounds - 10
    assert throttle.failures("otp", user.account) == 10


def test_attempt_as_context_keeps_the_slot_of_a_refusal(ctx, client):
    with pytest.raises(InvalidCredentials), throttle.begin("password", "alice@mail.xamd.edu.cn", client.ip, now=NOON):
        raise InvalidCredentials("账号或密码错误")
    assert throttle.failures("password", "alice@mail.xamd.edu.cn", now=NOON) == 1


@pytest.mark.parametrize("failure", [RuntimeError("database gone"), Unavailable("系统繁忙")], ids=["crash", "503"])
def test_attempt_as_context_gives_the_slot_back_when_the_server_fails(ctx, client, failure):
    with pytest.raises(type(failure)), throttle.begin("password", "alice@mail.xamd.edu.cn", client.ip, now=NOON):
        raise failure
    assert throttle.failures("password", "alice@mail.xamd.edu.cn", now=NOON) == 0
