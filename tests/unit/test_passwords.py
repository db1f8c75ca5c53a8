"""Password hashing: a wrong password is False; a hash the server cannot compute is its failure, not the user's."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import HashingError

from portal.models import AuditEvent, User
from portal.services import app_passwords, login, passwords, throttle
from portal.services.errors import InvalidCredentials, Unavailable
from tests.conftest import PASSWORD


def test_verify_tells_right_from_wrong(ctx):
    stored = passwords.hash_password(PASSWORD)
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD + "x")
    assert not passwords.verify(None, PASSWORD)
    assert not passwords.verify("not-an-argon2-hash", PASSWORD)


def test_a_hash_that_cannot_be_computed_is_unavailable_not_wrong(hashing_fails):
    with pytest.raises(Unavailable) as raised:
        passwords.verify(passwords.hash_password(PASSWORD), PASSWORD)
    assert raised.value.status == 503


def test_web_login_during_a_hashing_failure_costs_no_attempt(user, client, hashing_fails):
    with pytest.raises(Unavailable):
        login.password_step(user.account, PASSWORD, client, None, None)
    assert throttle.failures("password", user.account) == 0
    assert not AuditEvent.select().where(AuditEvent.outcome == "fail").exists()


def test_mail_login_during_a_hashing_failure_costs_no_attempt(user, hashing_fails):
    with pytest.raises(Unavailable):  # checkpassword exits 111, /mail/auth answers "try again later"
        app_passwords.authenticate(user.account, PASSWORD, "imap", "198.51.100.7")
    assert throttle.failures("mail", user.account) == 0
    assert not AuditEvent.select().where(AuditEvent.outcome == "fail").exists()


def test_a_wrong_password_still_counts(user, client):
    with pytest.raises(InvalidCredentials):
        login.password_step(user.account, "wrong password!", client, None, None)
    assert throttle.failures("password", user.account) == 1


def test_an_unknown_account_costs_one_argon2_run_like_a_known_one(ctx, monkeypatch):
    stored = passwords.hash_password(PASSWORD)
    runs: list[str] = []

    class Counting(PasswordHasher):
        def hash(self, *args, **kwargs):
            runs.append("hash")
            return super().hash(*args, **kwargs)

        def verify(self, *args, **kwargs):
            runs.append("verify")
            return super().verify(*args, **kwargs)

    counting = Counting()
    monkeypatch.setattr(passwords, "_hasher", lambda: counting)
    assert passwords.verify(stored, PASSWORD) and runs == ["verify"]
    assert not passwords.verify(None, PASSWORD) and runs == ["verify", "hash"]  # in every process, first call too


def test_an_unknown_account_when_hashing_fails_is_unavailable_too(monkeypatch):
    class OutOfMemory(PasswordHasher):
        def hash(self, *_args, **_kwargs):
            raise HashingError("Memory allocation error")

    failing = OutOfMemory()
    monkeypatch.setattr(passwords, "_hasher", lambda: failing)
    with pytest.raises(Unavailable):
        passwords.verify(None, PASSWORD)


def test_hashes_use_the_configured_parameters(app, ctx):
    assert "$m=19456,t=2,p=1$" in passwords.hash_password(PASSWORD)  # OWASP's argon2id defaults
    app.config.update(ARGON2_MEMORY_KIB=8192, ARGON2_TIME_COST=3)
    assert "$m=8192,t=3,p=1$" in passwords.hash_password(PASSWORD)


def test_a_login_redoes_a_hash_made_with_other_parameters(user, client):
    old = PasswordHasher(memory_cost=65536, time_cost=3, parallelism=4).hash("short")  # argon2-cffi's defaults
    User.update(password_hash=old).where(User.id == user.id).execute()
    assert passwords.needs_rehash(old)
    login.password_step(user.account, "short", client, None, None)  # shorter than today's rule: still accepted
    stored = User.get_by_id(user.id).password_hash
    assert stored != old and "$m=19456,t=2,p=1$" in stored and passwords.verify(stored, "short")
    assert not passwords.needs_rehash(stored)
