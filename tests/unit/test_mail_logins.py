"""Mail-client logins on 登录记录: counted in memory, one row per client and hour, never lost to a failed flush."""

from __future__ import annotations

from datetime import timedelta

import peewee
import pytest

from portal.models import MailLoginCount, utcnow
from portal.services import app_passwords, housekeeping, mail_logins
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def empty_buffer():
    mail_logins.buffer.take()  # what other tests' logins left
    yield
    mail_logins.buffer.take()


def test_a_hundred_polls_are_one_row_with_their_count(user):
    for _ in range(100):
        assert app_passwords.authenticate(user.account, PASSWORD, "imap", "198.51.100.9").ok
    assert MailLoginCount.select().count() == 0  # nothing written per login
    assert mail_logins.flush() == 1
    row = MailLoginCount.get()
    assert (row.user_id, row.protocol, row.ip, row.outcome, row.count) == (user.id, "imap", "198.51.100.9", "ok", 100)
    assert row.first_at <= row.last_at
    assert row.hour == row.first_at.replace(minute=0, second=0, microsecond=0)


def test_later_flushes_add_to_the_same_row(user):
    for _ in range(3):
        app_passwords.authenticate(user.account, PASSWORD, "imap", "198.51.100.9")
        mail_logins.flush()
    assert [row.count for row in MailLoginCount.select()] == [3]


def test_outcomes_protocols_and_addresses_are_rows_of_their_own(user):
    app_passwords.authenticate(user.account, PASSWORD, "imap", "198.51.100.9")
    app_passwords.authenticate(user.account, "wrong password", "imap", "198.51.100.9")
    app_passwords.authenticate(user.account, PASSWORD, "smtp", "198.51.100.9")
    app_passwords.authenticate(user.account, PASSWORD, "imap", "203.0.113.7")
    assert mail_logins.flush() == 4
    outcomes = sorted((row.protocol, row.ip, row.outcome) for row in MailLoginCount.select())
    assert ("imap", "198.51.100.9", "invalid_credentials") in outcomes and len(outcomes) == 4


def test_a_database_error_keeps_the_counts_for_the_next_flush(user, monkeypatch):
    for _ in range(5):
        app_passwords.authenticate(user.account, PASSWORD, "pop3", "198.51.100.9")
    real = mail_logins._upsert

    def broken(key, tally):
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(mail_logins, "_upsert", broken)
    assert mail_logins.flush() == 0
    assert len(mail_logins.buffer) == 1
    for _ in range(2):  # logins meanwhile join the kept counts
        app_passwords.authenticate(user.account, PASSWORD, "pop3", "198.51.100.9")
    monkeypatch.setattr(mail_logins, "_upsert", real)
    assert mail_logins.flush() == 1
    assert MailLoginCount.get().count == 7


def test_the_buffer_is_bounded():
    buffer = mail_logins.Buffer(max_keys=2)
    now = utcnow()
    keys = [mail_logins.Key(f"u{i}@x", None, "imap", "", "", "ok", now) for i in range(3)]
    for key in keys:
        buffer.add(key, now)
    buffer.add(keys[0], now)  # a known key still counts
    assert len(buffer) == 2 and buffer.dropped == 1
    assert buffer.tallies[keys[0]].count == 2


def test_old_counts_are_pruned(user):
    app_passwords.authenticate(user.account, PASSWORD, "imap", "198.51.100.9")
    mail_logins.flush()
    MailLoginCount.update(last_at=utcnow() - timedelta(days=91)).execute()
    assert housekeeping.prune()["mail-client login counts"] == 1
