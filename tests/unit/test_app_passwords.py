"""客户端专用密码: generation, hash-only storage, names, cap, delete/clear, and the mail-login rule (§4.12)."""

from __future__ import annotations

import math
import string
from datetime import timedelta

import pytest

from portal import config as config_module
from portal import crypto
from portal.models import AppPassword, AuditEvent, ThrottleCounter, utcnow
from portal.services import accounts, app_passwords, policy
from portal.services.app_passwords import APP_PASSWORD_REQUIRED, CAP, INVALID, THROTTLED
from portal.services.errors import Conflict, InvalidInput, NotFound
from tests.conftest import PASSWORD
from tests.unit.conftest import run_threads

IP = "198.51.100.20"


@pytest.fixture
def bob(ctx):
    return accounts.create("bob@mail.xamd.edu.cn", PASSWORD)


def make(user, client, name: str = "Foxmail") -> tuple[AppPassword, str]:
    return app_passwords.create(user, name, client)


def mail_login(account: str, password: str, protocol: str = "imap", ip: str = IP):
    return app_passwords.authenticate(account, password, protocol, ip)


def events(name: str, **where) -> list[AuditEvent]:
    query = AuditEvent.select().where(AuditEvent.event == name).order_by(AuditEvent.id)
    return [e for e in query if all(getattr(e, k) == v for k, v in where.items())]


# --- generation and storage -------------------------------------------------------------------


def test_generated_passwords_are_16_letters_and_digits_and_unique():
    made = [app_passwords.generate() for _ in range(500)]
    assert all(len(p) == 16 and set(p) <= set(string.ascii_letters + string.digits) for p in made)
    assert len(set(made)) == len(made)
    used = set("".join(made))
    assert len(used) > 55  # the whole alphabet is in use, not a subset


def test_grouped_in_fours():
    assert app_passwords.grouped("GdGneAF6iFvUg6rB") == ["GdGn", "eAF6", "iFvU", "g6rB"]


def test_create_returns_the_plaintext_once_and_stores_only_its_hmac(user, client):
    row, plaintext = make(user, client)
    assert len(plaintext) == 16 and plaintext.isascii() and plaintext.isalnum()
    stored = AppPassword.get_by_id(row.id)
    assert stored.secret_hash == crypto.token_hash(plaintext) and len(stored.secret_hash) == 64
    assert stored.name == "Foxmail" and stored.user_id == user.id
    assert stored.last_used_at is None and stored.last_protocol == "" and stored.last_ip == ""
    every_value = [str(v) for v in stored.__data__.values()]
    every_value += [e.detail for e in AuditEvent.select()]
    assert not any(plaintext in value for value in every_value)


def test_creation_is_audited(user, client):
    row, _ = make(user, client, "手机邮件")
    (event,) = events("app_password_created")
    assert event.user_id == user.id and event.ip == client.ip and f"id={row.id}" in event.detail


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "a" * 33,
        "bad\x00name",
        "tab\tname",
        "new\nline",
        "bell\x07",
        "\u202eevil",
        "zero\u200bwidth",
        "x\u2028y",
    ],
)
def test_bad_names_are_refused(user, client, name):
    with pytest.raises(InvalidInput):
        make(user, client, name)
    assert AppPassword.select().count() == 0


@pytest.mark.parametrize(("given", "kept"), [("Foxmail", "Foxmail"), ("  手机  ", "手机"), ("a" * 32, "a" * 32)])
def test_good_names_are_kept_trimmed(user, client, given, kept):
    row, _ = make(user, client, given)
    assert AppPassword.get_by_id(row.id).name == kept


def test_names_are_unique_per_user(user, bob, client):
    make(user, client, "Outlook")
    with pytest.raises(Conflict) as info:
        make(user, client, "Outlook")
    assert info.value.code == "name_taken"
    make(bob, client, "Outlook")  # another user may use the same name
    assert AppPassword.select().count() == 2


# --- cap --------------------------------------------------------------------------------------


def test_at_most_20_per_user(user, bob, client):
    for i in range(CAP):
        make(user, client, f"client {i}")
    with pytest.raises(Conflict) as info:
        make(user, client, "one too many")
    assert info.value.code == "too_many" and "20" in info.value.message
    assert AppPassword.select().where(AppPassword.user == user).count() == CAP
    make(bob, client)  # the cap is per user


def test_parallel_creations_cannot_pass_the_cap(app, user, client):
    for i in range(CAP - 1):
        make(user, client, f"client {i}")
    results = run_threads(app, 5, lambda i: app_passwords.create(user, f"parallel {i}", client))
    assert [kind for kind, _ in results].count("ok") == 1
    assert all(isinstance(value, Conflict) for kind, value in results if kind == "error")
    assert AppPassword.select().where(AppPassword.user == user).count() == CAP


# --- listing, delete, clear -------------------------------------------------------------------


def test_listing_is_newest_first_and_only_own(user, bob, client):
    first, _ = make(user, client, "first")
    second, _ = make(user, client, "second")
    make(bob, client, "bob's")
    assert [row.id for row in app_passwords.listing(user)] == [second.id, first.id]


def test_delete_takes_effect_on_the_next_login(user, client):
    row, plaintext = make(user, client)
    assert mail_login(user.account, plaintext).ok
    deleted = app_passwords.delete(user, row.id, client)
    assert deleted.name == "Foxmail"
    login = mail_login(user.account, plaintext)
    assert not login.ok and login.reason == "invalid_credentials"
    assert events("app_password_deleted")[0].detail == f"id={row.id} name=Foxmail"
    with pytest.raises(NotFound):
        app_passwords.delete(user, row.id, client)


def test_cannot_delete_another_users_password(user, bob, client):
    row, plaintext = make(bob, client)
    with pytest.raises(NotFound):
        app_passwords.delete(user, row.id, client)
    assert mail_login(bob.account, plaintext).ok


def test_clear_removes_all_of_one_user(user, bob, client):
    made = [make(user, client, f"c{i}")[1] for i in range(3)]
    _, bobs = make(bob, client)
    assert app_passwords.clear(user, client) == 3
    assert all(not mail_login(user.account, p).ok for p in made)
    assert mail_login(bob.account, bobs).ok
    assert events("app_passwords_cleared")[0].detail == "3 app password(s)"
    assert app_passwords.clear(user, client) == 0


# --- the rule for IMAP/POP3/SMTP (invariant 12) -----------------------------------------------


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_without_a_factor_both_passwords_work(user, client, protocol):
    _, plaintext = make(user, client)
    assert not app_passwords.required(user)
    assert mail_login(user.account, PASSWORD, protocol).ok
    assert mail_login(user.account, plaintext, protocol).ok


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_with_a_factor_only_app_passwords_work(user, totp_secret, client, protocol):
    _, plaintext = make(user, client)
    assert app_passwords.required(user)
    refused = mail_login(user.account, PASSWORD, protocol)
    assert not refused.ok and refused.reason == "app_password_required" and refused.message == APP_PASSWORD_REQUIRED
    login = mail_login(user.account, plaintext, protocol)
    assert login.ok and login.user.id == user.id


def test_admin_policy_requires_app_passwords_for_everyone(user, client):
    _, plaintext = make(user, client)
    policy.set_value("mail_requires_app_password", "on")
    assert app_passwords.required(user)
    assert mail_login(user.account, PASSWORD).reason == "app_password_required"
    assert mail_login(user.account, plaintext).ok
    policy.set_value("mail_requires_app_password", "off")
    assert mail_login(user.account, PASSWORD).ok


@pytest.mark.parametrize("value", ["ON", "yes", "1", ""])
def test_policy_value_is_validated(ctx, value):
    with pytest.raises(InvalidInput):
        policy.set_value("mail_requires_app_password", value)


def test_the_hint_is_ascii_for_mail_clients():
    for message in (INVALID, APP_PASSWORD_REQUIRED, THROTTLED):
        assert message.isascii() and message.isprintable() and "temporary" not in message.lower()


def test_wrong_and_foreign_passwords_are_refused(user, bob, client):
    _, bobs = make(bob, client)
    for password in ("wrong password!", bobs, "", bobs.lower(), bobs + "x"):
        login = mail_login(user.account, password)
        assert not login.ok and login.reason == "invalid_credentials" and login.message == INVALID
    assert not mail_login("nobody@mail.xamd.edu.cn", bobs).ok


def test_spaces_between_the_groups_are_accepted_and_case_is_not_ignored(user, totp_secret, client):
    _, plaintext = make(user, client)
    assert mail_login(user.account, " ".join(app_passwords.grouped(plaintext))).ok
    assert mail_login(user.account.upper(), plaintext, "IMAP").ok  # account and protocol names are not case-sensitive
    assert not mail_login(user.account, plaintext.swapcase()).ok


def test_disabled_accounts_are_refused(user, client):
    _, plaintext = make(user, client)
    accounts.set_disabled(user.account, True)
    for password in (plaintext, PASSWORD):
        login = mail_login(user.account, password)
        assert not login.ok and login.reason == "disabled" and login.message == INVALID


@pytest.mark.parametrize(
    ("account", "password", "protocol"),
    [
        ("alice@mail.xamd.edu.cn", PASSWORD, "lmtp"),
        ("alice@mail.xamd.edu.cn", PASSWORD, ""),
        ("", PASSWORD, "imap"),
        ("alice@mail.xamd.edu.cn\x00", PASSWORD, "imap"),
        ("a" * 300, PASSWORD, "imap"),
        ("alice@mail.xamd.edu.cn", "x" * 300, "imap"),
    ],
)
def test_malformed_requests_are_refused_without_touching_the_database(user, account, password, protocol):
    login = mail_login(account, password, protocol)
    assert not login.ok and login.reason == "bad_request"
    assert ThrottleCounter.select().count() == 0


# --- throttling and audit ---------------------------------------------------------------------


def test_web_and_mail_together_stay_within_100_password_guesses_per_hour():
    window = int(config_module.DEFAULTS["THROTTLE_WINDOW_MINUTES"])
    limit = int(config_module.DEFAULTS["THROTTLE_ACCOUNT_FAILURES"])
    # any 60-minute span touches at most ceil(60/window)+1 fixed windows; "password" and "mail" scopes
    assert (math.ceil(60 / window) + 1) * limit * 2 <= 100


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=3, THROTTLE_WINDOW_MINUTES=1440)
def test_failures_lock_the_account_for_mail_even_with_the_right_password(user, totp_secret, client):
    _, plaintext = make(user, client)
    for _ in range(3):
        assert mail_login(user.account, "wrong password!").reason == "invalid_credentials"
    login = mail_login(user.account, plaintext)
    assert not login.ok and login.reason == "throttled" and login.message == THROTTLED and login.retry_after > 0
    assert events("locked_out", account=user.account)
    assert ThrottleCounter.get(ThrottleCounter.scope == "mail:acct").failures == 3


@pytest.mark.config(THROTTLE_ACCOUNT_FAILURES=3, THROTTLE_WINDOW_MINUTES=1440)
def test_successes_give_their_slot_back(user, client):
    _, plaintext = make(user, client)
    mail_login(user.account, "wrong password!")
    for _ in range(10):
        assert mail_login(user.account, plaintext).ok
        assert mail_login(user.account, PASSWORD).ok
    assert ThrottleCounter.get(ThrottleCounter.scope == "mail:acct").failures == 1


@pytest.mark.config(THROTTLE_IP_FAILURES=4, THROTTLE_WINDOW_MINUTES=1440)
def test_failures_are_counted_per_ip_across_accounts(user, bob, client):
    for i in range(4):
        mail_login(f"user{i}@mail.xamd.edu.cn", "guess", ip="203.0.113.99")
    assert mail_login(bob.account, PASSWORD, ip="203.0.113.99").reason == "throttled"
    assert mail_login(bob.account, PASSWORD, ip="203.0.113.100").ok


def test_mail_scope_is_separate_from_the_web_login(user, client):
    mail_login(user.account, "wrong password!")
    assert {c.scope for c in ThrottleCounter.select()} == {"mail:acct", "mail:ip"}


def test_failures_are_audited_with_protocol_and_ip(user, totp_secret, client):
    mail_login(user.account, "wrong password!", "pop3")
    mail_login(user.account, PASSWORD, "smtp")
    first, second = events("mail_login", outcome="fail")
    assert (first.method, first.ip, first.detail, first.user_id) == ("pop3", IP, "invalid_credentials", user.id)
    assert (second.method, second.detail) == ("smtp", "app_password_required")
    mail_login("ghost@mail.xamd.edu.cn", "x", "imap")
    assert events("mail_login", outcome="fail")[-1].account == "ghost@mail.xamd.edu.cn"


# --- last use: written only when it says something new ----------------------------------------


@pytest.fixture
def update_spy(monkeypatch):
    """Counts UPDATE queries built on the app password table."""
    calls = []
    original = AppPassword.update.__func__

    def spy(cls, *args, **kwargs):
        calls.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AppPassword, "update", classmethod(spy))
    return calls


def test_first_use_is_recorded_and_audited(user, client):
    row, plaintext = make(user, client)
    assert mail_login(user.account, plaintext, "imap", "192.0.2.5").ok
    row = AppPassword.get_by_id(row.id)
    assert (row.last_protocol, row.last_ip) == ("imap", "192.0.2.5")
    assert utcnow() - row.last_used_at < timedelta(seconds=30)
    (event,) = events("mail_login", outcome="ok")
    assert event.method == "imap" and event.ip == "192.0.2.5" and f"app password {row.id}" == event.detail


def test_a_busy_client_does_not_write_on_every_login(user, client, update_spy):
    row, plaintext = make(user, client)
    mail_login(user.account, plaintext)
    assert len(update_spy) == 1
    for _ in range(20):
        assert mail_login(user.account, plaintext).ok
    assert len(update_spy) == 1  # not even a conditional UPDATE
    assert len(events("mail_login", outcome="ok")) == 1


@pytest.mark.parametrize(
    ("minutes_ago", "protocol", "ip", "written"),
    [
        (4, "imap", IP, False),
        (6, "imap", IP, True),
        (1, "smtp", IP, True),
        (1, "imap", "192.0.2.77", True),
    ],
)
def test_last_use_is_rewritten_when_old_or_from_elsewhere(user, client, minutes_ago, protocol, ip, written):
    row, plaintext = make(user, client)
    earlier = utcnow() - timedelta(minutes=minutes_ago)
    AppPassword.update(last_used_at=earlier, last_protocol="imap", last_ip=IP).where(AppPassword.id == row.id).execute()
    assert mail_login(user.account, plaintext, protocol, ip).ok
    row = AppPassword.get_by_id(row.id)
    assert (row.last_used_at != earlier) is written
    assert (row.last_protocol, row.last_ip) == ((protocol, ip) if written else ("imap", IP))
    assert len(events("mail_login", outcome="ok")) == (1 if written else 0)


def test_parallel_logins_record_one_use(app, user, client):
    _, plaintext = make(user, client)
    results = run_threads(app, 6, lambda i: mail_login(user.account, plaintext).ok)
    assert results == [("ok", True)] * 6
    assert len(events("mail_login", outcome="ok")) == 1


def test_a_password_change_revokes_every_app_password(user, client):
    _, plaintext = make(user, client)
    assert mail_login(user.account, plaintext).ok
    accounts.set_password(user.account, "Another-password-7")
    assert AppPassword.select().where(AppPassword.user == user).count() == 0
    assert not mail_login(user.account, plaintext).ok
