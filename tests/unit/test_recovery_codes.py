"""备用码: ten one-time codes, stored as HMACs, accepted by any second step, voided with the last factor."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent, Factor, RecoveryCode
from portal.services import accounts, factors, login, sessions, throttle
from portal.services.errors import InvalidCode, NotAllowed
from portal.services.factors import recovery
from portal.services.step_up import StepUpRequired
from tests.helpers import run_threads


def test_ten_codes_of_ten_characters_stored_only_as_hashes(user, totp_secret, client):
    codes = recovery.generate(user, client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(code) == 11 and code[5] == "-" for code in codes)
    stored = {row.code_hash for row in RecoveryCode.select()}
    assert len(stored) == 10 and not any(code.replace("-", "") in "".join(stored) for code in codes)
    assert recovery.remaining(user) == 10


@pytest.mark.parametrize(
    "spelling", [lambda c: c, lambda c: c.replace("-", ""), lambda c: c.upper(), lambda c: f" {c} "]
)
def test_a_code_works_once_in_any_spelling(user, totp_secret, client, spelling):
    code = recovery.generate(user, client)[0]
    assert recovery.consume(user, spelling(code))
    assert not recovery.consume(user, code)
    assert recovery.remaining(user) == 9


def test_parallel_uses_of_one_code_let_one_through(app, user, totp_secret, client):
    code = recovery.generate(user, client)[0]
    results = run_threads(app, 4, lambda _: recovery.consume(user, code))
    assert sorted(results) == [("ok", False), ("ok", False), ("ok", False), ("ok", True)]


def test_another_users_code_and_garbage_are_refused(ctx, user, totp_secret, client):
    bob = accounts.create("bob@mail.xamd.edu.cn", "correct horse battery", name="Bob")
    theirs = recovery.generate(bob, client)[0]
    recovery.generate(user, client)
    for raw in (theirs, "", "abc", "0000000000", "１２３４５６７８９a"):
        assert not recovery.consume(user, raw)


def test_regenerating_voids_the_old_set(user, totp_secret, client):
    old = recovery.generate(user, client)
    new = recovery.generate(user, client)
    assert not recovery.consume(user, old[0]) and recovery.consume(user, new[0])


def test_the_second_step_takes_a_recovery_code_in_the_code_field(user, totp_secret, client):
    code = recovery.generate(user, client)[3]
    half = sessions.resolve(sessions.start(user, sessions.SECOND_FACTOR, client))
    step = login.second_step(half, "totp", code, False, client)
    assert step.stage == sessions.FULL
    assert sessions.resolve(step.token).second_step == "recovery"
    used = AuditEvent.get(AuditEvent.event == "recovery_code_used")
    assert (used.outcome, used.detail) == ("ok", "9 left")


def test_a_wrong_recovery_code_is_a_failed_attempt(user, totp_secret, client):
    recovery.generate(user, client)
    with pytest.raises(InvalidCode, match="备用码错误"):
        factors.verify(user, "recovery", "abcde-fghjk", client, "login")
    assert throttle.failures("otp", user.account) == 1


def test_codes_are_only_for_accounts_with_a_factor_and_after_a_fresh_verification(user, full_session, client):
    with pytest.raises(NotAllowed):
        recovery.issue(full_session, user, client)
    Factor.create(user=user, method="totp", secret="")
    with pytest.raises(StepUpRequired):
        recovery.issue(full_session, user, client)
    sessions.mark_verified(full_session, "totp")
    codes = recovery.issue(full_session, user, client)
    assert recovery.fresh(full_session) == codes


def test_unbinding_the_last_factor_or_an_admin_reset_voids_them(user, totp_secret, full_session, client, clock):
    recovery.generate(user, client)
    factors.remove(user, "totp", client, "totp", full_session)
    assert recovery.remaining(user) == 0
    Factor.create(user=user, method="totp", secret="")
    recovery.generate(user, client)
    accounts.reset_2fa(user.account, "lost phone", client=client)
    assert recovery.remaining(user) == 0
