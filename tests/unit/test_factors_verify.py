"""factors.verify: strict, throttled, each code used at most once (invariants 3, 4, 5)."""

from __future__ import annotations

import pytest

from portal import crypto
from portal.models import AuditEvent, Factor
from portal.services import factors, otp, throttle
from portal.services.errors import InvalidCode, Throttled
from tests.unit.conftest import run_threads, wrong_code


def _verify(user, code, client, purpose="login"):
    return factors.verify(user, "totp", code, client, purpose)


def test_correct_code_is_accepted_and_step_recorded(user, totp_secret, clock, client):
    assert _verify(user, clock.code(totp_secret), client) == "totp"
    stored = Factor.get(Factor.user == user)
    assert stored.last_used_step == clock.step
    assert stored.last_used_at is not None


@pytest.mark.parametrize("offset", [-1, 1])
def test_codes_of_neighbouring_steps_are_accepted(user, totp_secret, clock, client, offset):
    _verify(user, clock.code(totp_secret, offset), client)
    assert Factor.get(Factor.user == user).last_used_step == clock.step + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_codes_two_steps_away_are_refused(user, totp_secret, clock, client, offset):
    with pytest.raises(InvalidCode) as info:
        _verify(user, clock.code(totp_secret, offset), client)
    assert info.value.code == "invalid_code"


def test_same_code_twice_is_a_replay(user, totp_secret, clock, client):
    code = clock.code(totp_secret)
    _verify(user, code, client)
    with pytest.raises(InvalidCode) as info:
        _verify(user, code, client)
    assert info.value.code == "code_reused"


def test_same_code_is_refused_even_in_a_later_step(user, totp_secret, clock, client):
    code = clock.code(totp_secret)
    _verify(user, code, client)
    clock.advance(1)  # the code is now the previous step's: still in the window, but used
    with pytest.raises(InvalidCode) as info:
        _verify(user, code, client)
    assert info.value.code == "code_reused"


def test_older_step_after_a_newer_one_is_refused(user, totp_secret, clock, client):
    _verify(user, clock.code(totp_secret, +1), client)
    for offset in (0, -1):
        with pytest.raises(InvalidCode) as info:
            _verify(user, clock.code(totp_secret, offset), client)
        assert info.value.code == "code_reused"


def test_next_step_after_a_used_one_is_accepted(user, totp_secret, clock, client):
    _verify(user, clock.code(totp_secret), client)
    clock.advance(1)
    _verify(user, clock.code(totp_secret), client)
    assert Factor.get(Factor.user == user).last_used_step == clock.step


def test_codes_of_one_user_do_not_consume_another_users_steps(ctx, user, totp_secret, clock, client):
    from portal.services import accounts
    from tests.conftest import PASSWORD

    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    Factor.create(user=bob, method="totp", secret=crypto.encrypt(totp_secret))  # same seed, other account
    code = clock.code(totp_secret)
    _verify(user, code, client)
    _verify(bob, code, client)


def test_unbound_method_is_refused(user, client, clock):
    with pytest.raises(InvalidCode):
        _verify(user, "123456", client)
    assert throttle.failures("otp", user.account) == 1


def test_method_without_codes_is_refused(user, totp_secret, clock, client):
    method = "retired"  # a row of a method this release does not know
    Factor.create(user=user, method=method, secret=crypto.encrypt(totp_secret))
    with pytest.raises(InvalidCode):
        factors.verify(user, method, clock.code(totp_secret), client, "login")


def test_wrong_code_counts_a_failure_and_is_audited(user, totp_secret, clock, client):
    with pytest.raises(InvalidCode):
        _verify(user, wrong_code(totp_secret, clock), client)
    assert throttle.failures("otp", user.account) == 1
    event = AuditEvent.select().where(AuditEvent.event == "login_verify").get()
    assert (event.outcome, event.method, event.ip, event.user_agent) == ("fail", "totp", client.ip, client.user_agent)
    assert event.detail == "invalid_code"


@pytest.mark.parametrize("raw", ["12345", "１２３４５６", "", None, "abcdef"])
def test_format_errors_count_a_failure(user, totp_secret, clock, client, raw):
    with pytest.raises(InvalidCode):
        _verify(user, raw, client)
    assert throttle.failures("otp", user.account) == 1


def test_replay_counts_a_failure(user, totp_secret, clock, client):
    code = clock.code(totp_secret)
    _verify(user, code, client)
    with pytest.raises(InvalidCode):
        _verify(user, code, client)
    assert throttle.failures("otp", user.account) == 1


def test_success_counts_no_failure_and_is_audited(user, totp_secret, clock, client):
    _verify(user, clock.code(totp_secret), client, purpose="unbind")
    assert throttle.failures("otp", user.account) == 0
    event = AuditEvent.select().where(AuditEvent.event == "unbind_verify").get()
    assert (event.outcome, event.user_id) == ("ok", user.id)


def test_unicode_digits_are_never_normalised(user, totp_secret, clock, client):
    code = clock.code(totp_secret)
    fullwidth = code.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    with pytest.raises(InvalidCode):
        _verify(user, fullwidth, client)
    _verify(user, code, client)  # the ASCII code itself was not consumed


def test_spaces_in_a_correct_code_are_accepted(user, totp_secret, clock, client):
    code = clock.code(totp_secret)
    _verify(user, f" {code[:3]} {code[3:]} ", client)


@pytest.mark.parametrize("threads", [8])
def test_racing_threads_with_the_same_code_exactly_one_wins(app, user, totp_secret, clock, client, threads):
    code = clock.code(totp_secret)

    def attempt(_):
        from portal.models import User

        return factors.verify(User.get_by_id(user.id), "totp", code, client, "login")

    results = run_threads(app, threads, attempt)
    wins = [r for kind, r in results if kind == "ok"]
    losses = [r for kind, r in results if kind == "error"]
    assert len(wins) == 1, results
    assert all(isinstance(e, InvalidCode) and e.code == "code_reused" for e in losses), losses
    assert throttle.failures("otp", user.account) == threads - 1


def test_throttled_account_does_not_evaluate_the_code(user, totp_secret, clock, client, app, monkeypatch):
    limit = int(app.config["THROTTLE_ACCOUNT_FAILURES"])
    for _ in range(limit):
        with pytest.raises(InvalidCode):
            _verify(user, wrong_code(totp_secret, clock), client)
    evaluated = []
    monkeypatch.setattr(otp, "matching_step", lambda *a, **k: evaluated.append(a))
    with pytest.raises(Throttled):
        _verify(user, clock.code(totp_secret), client)
    assert evaluated == []
    assert Factor.get(Factor.user == user).last_used_step is None  # the correct code was not consumed
