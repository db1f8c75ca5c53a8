"""Accounts: create, CSV import (all or none), password, 2FA reset, disable, per-user policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal import crypto
from portal.models import AuditEvent, Enrollment, Factor, LoginSession, TrustedDevice, User, utcnow
from portal.services import accounts, passwords, sessions, throttle, trust
from portal.services.errors import Conflict, InvalidInput, NotFound
from tests.conftest import PASSWORD

HEADER = "account,name,password,admin\n"


def _events(name: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.event == name).order_by(AuditEvent.id))


def test_create_normalises_and_hashes_with_argon2id(ctx):
    user = accounts.create("  Zhang.San@Mail.XAMD.edu.CN ", PASSWORD, name=" 张三 ", admin=True)
    stored = User.get_by_id(user.id)
    assert stored.account == "zhang.san@mail.xamd.edu.cn"
    assert stored.name == "张三"
    assert stored.role == "admin"
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert passwords.verify(stored.password_hash, PASSWORD)
    assert not passwords.verify(stored.password_hash, PASSWORD + "x")
    assert _events("user_created")[0].account == "zhang.san@mail.xamd.edu.cn"


def test_get_is_case_insensitive(ctx, user):
    assert accounts.get("ALICE@mail.xamd.edu.cn").id == user.id
    with pytest.raises(NotFound):
        accounts.get("nobody@mail.xamd.edu.cn")


@pytest.mark.parametrize(
    "account",
    [
        "",
        "alice",
        "alice@",
        "@mail.xamd.edu.cn",
        "alice@localhost",
        "alice@@mail.xamd.edu.cn",
        "ali ce@mail.xamd.edu.cn",
        "alice@mail..cn",
        "张三@mail.xamd.edu.cn",
        "alice\n@mail.xamd.edu.cn",
        "alice@mail.xamd.edu.cn\nbob@mail.xamd.edu.cn",
        "a" * 65 + "@mail.xamd.edu.cn",
        "alice@" + "b" * 250 + ".cn",
        "alice;drop@mail.xamd.edu.cn",
    ],
)
def test_create_rejects_invalid_addresses(ctx, account):
    with pytest.raises(InvalidInput):
        accounts.create(account, PASSWORD)
    assert User.select().count() == 0


def test_create_rejects_duplicates_whatever_the_case(ctx, user):
    with pytest.raises(Conflict) as info:
        accounts.create("Alice@Mail.xamd.edu.cn", PASSWORD)
    assert info.value.status == 409
    assert User.select().count() == 1


@pytest.mark.parametrize("password", ["", "short", "1234567", "x" * 257])
def test_create_rejects_bad_passwords(ctx, password):
    with pytest.raises(InvalidInput):
        accounts.create("bob@mail.xamd.edu.cn", password)
    assert User.select().count() == 0


def test_eight_character_password_is_enough(ctx):
    assert accounts.create("bob@mail.xamd.edu.cn", "12345678").account == "bob@mail.xamd.edu.cn"


# --- CSV import -------------------------------------------------------------------------------


def test_import_csv_creates_every_row(ctx):
    text = HEADER + "Bob@Mail.xamd.edu.cn,鲍勃,Bob-password-1,yes\ncarol@mail.xamd.edu.cn,Carol,Carol-password-1,\n"
    users = accounts.import_csv(text)
    assert [u.account for u in users] == ["bob@mail.xamd.edu.cn", "carol@mail.xamd.edu.cn"]
    bob = User.by_account("bob@mail.xamd.edu.cn")
    assert (bob.name, bob.role) == ("鲍勃", "admin")
    assert User.by_account("carol@mail.xamd.edu.cn").role == ""
    assert passwords.verify(bob.password_hash, "Bob-password-1")
    assert bob.password_hash.startswith("$argon2id$")
    assert "2 accounts" in _events("users_imported")[0].detail


def test_import_csv_without_admin_column_and_with_spaced_header(ctx):
    users = accounts.import_csv(" Account , Password ,NAME\nbob@mail.xamd.edu.cn,Bob-password-1,Bob\n")
    assert users[0].account == "bob@mail.xamd.edu.cn"
    assert users[0].name == "Bob"
    assert users[0].role == ""


def _import_errors(text: str) -> list[str]:
    before = User.select().count()
    with pytest.raises(InvalidInput) as info:
        accounts.import_csv(text)
    assert User.select().count() == before, "nothing may be imported when a row is bad"
    return info.value.message.splitlines()


def test_import_csv_bad_address_names_its_line_and_imports_nothing(ctx):
    text = HEADER + "bob@mail.xamd.edu.cn,Bob,Bob-password-1,\nnot-an-address,X,Xx-password-1,\n"
    errors = _import_errors(text)
    assert len(errors) == 1
    assert errors[0].startswith("line 3:")
    assert "not-an-address" in errors[0]


def test_import_csv_lists_every_bad_line(ctx, user):
    text = (
        HEADER
        + "bob@mail.xamd.edu.cn,Bob,Bob-password-1,\n"  # line 2: fine
        + "broken,X,Xx-password-1,\n"  # line 3: bad address
        + "BOB@mail.xamd.edu.cn,Bob again,Bob-password-2,\n"  # line 4: duplicate within the file
        + "alice@mail.xamd.edu.cn,Alice,Alice-password-1,\n"  # line 5: account exists
        + "dave@mail.xamd.edu.cn,Dave,short,\n"  # line 6: weak password
        + "erin@mail.xamd.edu.cn\n"  # line 7: no password column
    )
    errors = _import_errors(text)
    assert [u.account for u in User.select()] == ["alice@mail.xamd.edu.cn"]
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "重复" in errors[1]
    assert "已存在" in errors[2]


def test_import_csv_keeps_existing_accounts_untouched_on_error(ctx, user):
    before = User.get_by_id(user.id).password_hash
    with pytest.raises(InvalidInput):
        accounts.import_csv(HEADER + "alice@mail.xamd.edu.cn,A,New-password-1,yes\n")
    after = User.get_by_id(user.id)
    assert (after.password_hash, after.role) == (before, "")


@pytest.mark.parametrize("header", ["account,name\n", "name,password\n", "\n", ""])
def test_import_csv_missing_columns(ctx, header):
    with pytest.raises(InvalidInput) as info:
        accounts.import_csv(header + "bob@mail.xamd.edu.cn,Bob-password-1\n")
    assert info.value.message.startswith("line 1: missing column")
    assert User.select().count() == 0


def test_import_csv_header_only_imports_nothing(ctx):
    assert accounts.import_csv(HEADER) == []


def test_import_csv_race_with_a_new_account_is_a_conflict_and_imports_nothing(ctx, monkeypatch):
    """An account created between validation and insert must not surface as a raw DB error."""
    real_parse = accounts.parse_csv

    def parse_then_race(text):
        result = real_parse(text)
        accounts.create("carol@mail.xamd.edu.cn", PASSWORD)
        return result

    monkeypatch.setattr(accounts, "parse_csv", parse_then_race)
    with pytest.raises(Conflict):
        accounts.import_csv(HEADER + "bob@mail.xamd.edu.cn,B,Bob-password-1,\ncarol@mail.xamd.edu.cn,C,Carol-pass-1,\n")
    assert User.by_account("bob@mail.xamd.edu.cn") is None


# --- password, 2FA reset, disable, unlock ----------------------------------------------------------


def test_set_password_ends_sessions_and_revokes_trusted_devices(user, client):
    token = sessions.start(user, sessions.FULL, client)
    device = trust.issue(user, client, "totp")
    old_hash = User.get_by_id(user.id).password_hash
    accounts.set_password("ALICE@mail.xamd.edu.cn", "A-new-password-2", client)
    stored = User.get_by_id(user.id)
    assert stored.password_hash != old_hash
    assert stored.password_hash.startswith("$argon2id$")
    assert passwords.verify(stored.password_hash, "A-new-password-2")
    assert not passwords.verify(stored.password_hash, PASSWORD)
    assert sessions.resolve(token) is None
    assert LoginSession.get(LoginSession.user == user).end_reason == "password_changed"
    assert not trust.is_trusted(device, user)
    assert _events("password_changed")[0].ip == client.ip


def test_set_password_rejects_a_short_one_and_changes_nothing(user, client):
    token = sessions.start(user, sessions.FULL, client)
    with pytest.raises(InvalidInput):
        accounts.set_password(user.account, "short")
    assert passwords.verify(User.get_by_id(user.id).password_hash, PASSWORD)
    assert sessions.resolve(token) is not None


def test_set_password_of_unknown_account(ctx):
    with pytest.raises(NotFound):
        accounts.set_password("nobody@mail.xamd.edu.cn", "Long-enough-1")


def test_reset_2fa_removes_factors_and_pending_enrollments(user, totp_secret, client):
    token = sessions.start(user, sessions.FULL, client)
    session = sessions.resolve(token)
    Enrollment.create(user=user, session=session, method="totp", secret="x", expires_at=utcnow() + timedelta(minutes=5))
    device = trust.issue(user, client, "totp")
    assert accounts.reset_2fa(user.account, "lost phone, ticket #42") == 1
    assert not Factor.select().where(Factor.user == user).exists()
    assert not Enrollment.select().where(Enrollment.user == user).exists()
    assert sessions.resolve(token) is None
    assert not trust.is_trusted(device, user)
    assert "lost phone, ticket #42" in _events("2fa_reset")[0].detail


@pytest.mark.parametrize("reason", ["", "   "])
def test_reset_2fa_requires_a_reason(user, totp_secret, reason):
    with pytest.raises(InvalidInput):
        accounts.reset_2fa(user.account, reason)
    assert Factor.select().where(Factor.user == user).count() == 1
    assert _events("2fa_reset") == []


def test_reset_2fa_leaves_other_users_alone(user, totp_secret):
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    Factor.create(user=bob, method="totp", secret=crypto.encrypt(totp_secret))
    accounts.reset_2fa(user.account, "lost phone")
    assert Factor.select().where(Factor.user == bob).count() == 1


def test_disable_ends_sessions_and_enable_restores_login(user, client):
    token = sessions.start(user, sessions.FULL, client)
    accounts.set_disabled(user.account, True)
    assert User.get_by_id(user.id).disabled is True
    assert sessions.resolve(token) is None
    assert LoginSession.get(LoginSession.user == user).end_reason == "disabled"
    accounts.set_disabled(user.account, False)
    assert User.get_by_id(user.id).disabled is False
    assert [e.event for e in AuditEvent.select().where(AuditEvent.event.startswith("user_")).order_by(AuditEvent.id)][
        -2:
    ] == ["user_disabled", "user_enabled"]


def test_unlock_clears_counters_and_is_audited(user, client):
    throttle.begin("password", user.account, client.ip)
    throttle.begin("otp", user.account, client.ip)
    assert accounts.unlock(user.account.upper()) == 2
    assert throttle.failures("password", user.account) == 0
    assert throttle.failures("otp", user.account) == 0
    assert _events("user_unlocked")[0].user_id == user.id


def test_set_policy_changes_extra_methods_and_force(user):
    updated = accounts.set_policy(user.account, methods=" totp , email ", force=True)
    assert (updated.extra_methods, updated.force_2fa) == ("totp,email", True)
    updated = accounts.set_policy(user.account, force=False)
    assert (updated.extra_methods, updated.force_2fa) == ("totp,email", False)
    updated = accounts.set_policy(user.account, methods="")
    assert updated.extra_methods == ""
    assert len(_events("user_policy_changed")) == 3


def test_set_policy_rejects_unknown_methods(user):
    with pytest.raises(InvalidInput):
        accounts.set_policy(user.account, methods="totp,pigeon")
    assert User.get_by_id(user.id).extra_methods == ""


def test_set_policy_without_changes_writes_nothing(user):
    accounts.set_policy(user.account)
    assert _events("user_policy_changed") == []


def test_listing_shows_bound_methods(user, totp_secret):
    accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    assert [(u.account, m) for u, m in accounts.listing()] == [
        ("alice@mail.xamd.edu.cn", ["totp"]),
        ("bob@mail.xamd.edu.cn", []),
    ]


def test_trusted_devices_of_other_users_survive_a_password_change(user, client):
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    token = trust.issue(bob, client, "totp")
    accounts.set_password(user.account, "A-new-password-2")
    assert trust.is_trusted(token, bob)
    assert TrustedDevice.select().where(TrustedDevice.revoked_at.is_null()).count() == 1
