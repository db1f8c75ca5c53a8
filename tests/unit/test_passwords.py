"""Password hashing: a wrong password is False; a hash the server cannot compute is its failure, not the user's."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import HashingError

from portal.models import AuditEvent
from portal.services import app_passwords, login, passwords, throttle
from portal.services.errors import InvalidCredentials, Unavailable
from tests.conftest import PASSWORD


def test_verify_tells_right_from_wrong():
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


def test_an_unknown_account_costs_one_argon2_run_like_a_known_one(monkeypatch):
    stored = passwords.hash_password(PASSWORD)
    runs: list[str] = []

    class Counting(PasswordHasher):
        def hash(self, *args, **kwargs):
            runs.append("hash")
            return super().hash(*args, **kwargs)

        def verify(self, *args, **kwargs):
            runs.append("verify")
            return super().verify(*args, **kwargs)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    assert passwords.verify(stored, PASSWORD) and runs == ["verify"]
    assert not passwords.verify(None, PASSWORD) and runs == ["verify", "hash"]  # in every process, first call too


def test_an_unknown_account_when_hashing_fails_is_unavailable_too(monkeypatch):
    class OutOfMemory(PasswordHasher):
        def hash(self, *_args, **_kwargs):
            raise HashingError("Memory allocation error")

    monkeypatch.setattr(passwords, "_hasher", OutOfMemory())
    with pytest.raises(Unavailable):
        passwords.verify(None, PASSWORD)
