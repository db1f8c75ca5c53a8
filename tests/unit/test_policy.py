"""Admin policy: offered methods, forced binding, and the keys whose defaults are deployment settings."""

from __future__ import annotations

from datetime import datetime, timedelta

import peewee
import pytest

from portal.models import AuditEvent, Setting, User, utcnow
from portal.services import factors, policy, policy_values, sessions, throttle, trust
from portal.services.errors import InvalidInput, Throttled


def test_defaults(ctx):
    assert policy.get("force_2fa") == "off"
    assert policy.get("enabled_methods") == "app,wechat"
    assert Setting.select().count() == 0


@pytest.mark.parametrize("mode", policy.FORCE_MODES)
def test_set_force_mode(ctx, mode):
    policy.set_value("force_2fa", mode)
    assert policy.get("force_2fa") == mode


def test_set_value_overwrites(ctx):
    policy.set_value("force_2fa", "all")
    policy.set_value("force_2fa", "listed")
    assert policy.get("force_2fa") == "listed"
    assert Setting.select().count() == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("force_2fa", "ALL"),
        ("force_2fa", "yes"),
        ("force_2fa", ""),
        ("enabled_methods", "totp,carrier-pigeon"),
        ("enabled_methods", "TOTP"),
        ("no_such_policy", "x"),
    ],
)
def test_set_value_rejects_bad_values(ctx, key, value):
    with pytest.raises(InvalidInput):
        policy.set_value(key, value)
    assert Setting.select().count() == 0


def test_enabled_methods_are_normalised(ctx):
    policy.set_value("enabled_methods", " app , wechat,,totp ")
    assert policy.get("enabled_methods") == "app,wechat,totp"
    policy.set_value("enabled_methods", "")
    assert policy.get("enabled_methods") == ""


SELF_SERVICE = {"app", "wechat"}  # the manual's recommended methods, always offered


def test_offered_only_enabled_and_workable_methods(user):
    # Enabled by the admin, and workable here: 备用邮箱 needs a mail server, 短信 a provider, 安全密钥 a
    # domain name (the tests' PUBLIC_URL is an IP address).
    assert factors.offered(user) == SELF_SERVICE
    policy.set_value("enabled_methods", "app,wechat,totp,email,sms,token,webauthn")
    assert factors.offered(user) == SELF_SERVICE | {"totp", "token"}
    with pytest.raises(InvalidInput):
        policy.set_value("enabled_methods", "app,fax")


def test_offered_per_user(user):
    User.update(extra_methods="totp").where(User.id == user.id).execute()
    assert factors.offered(User.get_by_id(user.id)) == SELF_SERVICE | {"totp"}


def test_offered_to_admins(user):
    User.update(role="admin").where(User.id == user.id).execute()
    assert factors.offered(User.get_by_id(user.id)) == SELF_SERVICE | {"totp"}


@pytest.mark.parametrize(
    ("mode", "listed", "admin", "forced"),
    [
        ("off", False, False, False),
        ("off", True, False, False),
        ("off", False, True, True),
        ("all", False, False, True),
        ("listed", False, False, False),
        ("listed", True, False, True),
        ("listed", False, True, True),
    ],
)
def test_must_bind(user, mode, listed, admin, forced):
    policy.set_value("force_2fa", mode)
    User.update(force_2fa=listed, role="admin" if admin else "").where(User.id == user.id).execute()
    assert policy.must_bind(User.get_by_id(user.id)) is forced


def test_parse_methods():
    assert policy.parse_methods("totp, email") == ["totp", "email"]
    assert policy.parse_methods(" , ") == []
    with pytest.raises(InvalidInput):
        policy.parse_methods("totp,fax")


def test_trusted_networks_membership(ctx):
    assert not policy.in_trusted_network("10.1.2.3")  # none by default
    policy.set_value("trusted_networks", "10.0.0.0/8,2001:db8::/48")
    assert policy.in_trusted_network("10.1.2.3")
    assert policy.in_trusted_network("::ffff:10.1.2.3")  # an IPv4 client seen on a dual-stack socket
    assert policy.in_trusted_network("2001:db8::7")
    for outside in ("11.0.0.1", "2001:db9::1", "", "not-an-ip", "10.1.2.3, 11.0.0.1"):
        assert not policy.in_trusted_network(outside), outside


# --- keys whose default is a deployment setting (PORTAL_*) ---

CONFIG_BACKED = {
    "trusted_device_days": ("TRUSTED_DEVICE_DAYS", "14"),
    "lockout_account_failures": ("THROTTLE_ACCOUNT_FAILURES", "5"),
    "lockout_ip_failures": ("THROTTLE_IP_FAILURES", "40"),
    "lockout_window_minutes": ("THROTTLE_WINDOW_MINUTES", "30"),
    "step_up_minutes": ("STEP_UP_MINUTES", "5"),
    "support_contact": ("SUPPORT_CONTACT", "信息中心 电话 1234"),
}


@pytest.mark.parametrize("key", CONFIG_BACKED)
def test_config_values_are_the_defaults_and_a_row_overrides(app, ctx, key):
    setting, value = CONFIG_BACKED[key]
    assert policy.get(key) == str(app.config[setting])
    policy.set_value(key, value)
    assert policy.get(key) == value
    assert policy.current()[key] == value
    assert Setting.get(Setting.key == key).value == value


@pytest.mark.config(TRUSTED_DEVICE_DAYS=45, SUPPORT_CONTACT="Helpdesk 8012")
def test_a_deployment_setting_is_the_default(ctx):
    assert policy.number("trusted_device_days") == 45
    assert policy.support_contact() == "Helpdesk 8012"
    assert trust.lifetime() == timedelta(days=45)


def test_overrides_take_effect_in_throttle_trust_and_step_up(user, client):
    policy.update(
        {
            "lockout_account_failures": "4",
            "lockout_ip_failures": "6",
            "lockout_window_minutes": "30",
            "trusted_device_days": "3",
            "step_up_minutes": "2",
        }
    )
    assert throttle.failure_limits() == (4, 6)
    start, left = throttle.current_window(datetime(2026, 3, 2, 12, 10))
    assert (start, left) == (datetime(2026, 3, 2, 12, 0), 20 * 60)  # 30-minute windows
    for i in range(4):
        throttle.begin("otp", user.account, f"198.51.100.{i}", now=datetime(2026, 3, 2, 12, 10))
    with pytest.raises(Throttled):
        throttle.begin("otp", user.account, "198.51.100.9", now=datetime(2026, 3, 2, 12, 11))
    assert trust.lifetime() == timedelta(days=3)
    session = sessions.resolve(sessions.start(user, sessions.FULL, client))
    session.verified_at = utcnow() - timedelta(minutes=1)
    assert sessions.freshly_verified(session)
    session.verified_at = utcnow() - timedelta(minutes=2)
    assert not sessions.freshly_verified(session)


def test_the_ip_limit_counts_too(user, client):
    policy.update({"lockout_account_failures": "3", "lockout_ip_failures": "3"})
    noon = datetime(2026, 3, 2, 12, 0)
    for i in range(3):
        throttle.begin("otp", f"u{i}@x.cn", "198.51.100.1", now=noon)
    with pytest.raises(Throttled):
        throttle.begin("otp", "other@x.cn", "198.51.100.1", now=noon)


# --- validation ---


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("trusted_device_days", "0"),
        ("trusted_device_days", "91"),
        ("trusted_device_days", "1.5"),
        ("trusted_device_days", "٣"),  # not ASCII digits
        ("step_up_minutes", "0"),
        ("step_up_minutes", "61"),
        ("lockout_window_minutes", "4"),
        ("lockout_window_minutes", "61"),
        ("lockout_account_failures", "2"),
        ("lockout_account_failures", "51"),
        ("lockout_account_failures", "30"),  # 30 per 15 minutes = 120 an hour
        ("lockout_ip_failures", "9"),  # fewer than the account's 10
        ("force_2fa_snoozes", "21"),
        ("force_2fa_snoozes", "-1"),
        ("force_2fa_deadline", "2099-13-01"),
        ("force_2fa_deadline", "2099/01/01"),
        ("force_2fa_deadline", "1999-01-01"),
        ("support_contact", ""),
        ("support_contact", "x" * 201),
        ("trusted_networks", "10.0.0.0/7"),
        ("trusted_networks", "10.0.0.1/24"),
        ("risk_step_up", "yes"),
    ],
)
def test_new_keys_reject_bad_values(ctx, key, value):
    with pytest.raises(InvalidInput):
        policy.set_value(key, value)
    assert Setting.select().count() == 0
    assert not AuditEvent.select().exists()


def test_the_hourly_cap_holds_for_every_accepted_combination(ctx):
    """Invariant 5: whatever the policy accepts, failures x (60 / window) <= 100."""
    low, high = policy_values.RANGES["lockout_account_failures"]
    for window in range(5, 61):
        for failures in range(low, high + 1):
            ok = not policy_values.cross_errors(
                {
                    "lockout_account_failures": str(failures),
                    "lockout_ip_failures": "100",
                    "lockout_window_minutes": str(window),
                },
                {"lockout_window_minutes"},
            )
            assert ok == (failures * 60 / window <= 100), (failures, window)


def test_values_are_normalised(ctx):
    policy.set_value("support_contact", "  信息中心\n 电话   1234 ")
    assert policy.get("support_contact") == "信息中心 电话 1234"
    policy.set_value("trusted_device_days", " 007 ")
    assert policy.get("trusted_device_days") == "7"
    policy.set_value("trusted_networks", "10.0.0.0/8\n192.168.0.0/16")
    assert policy.get("trusted_networks") == "10.0.0.0/8,192.168.0.0/16"
    policy.set_value("force_2fa_deadline", "2099-03-01")
    policy.set_value("force_2fa_deadline", "")
    assert policy.get("force_2fa_deadline") == ""


def test_an_old_deadline_may_stay_while_other_keys_change(ctx):
    Setting.create(key="force_2fa_deadline", value="2001-01-01")
    assert policy.update({"force_2fa_deadline": "2001-01-01", "force_2fa": "all"}) == ["force_2fa"]


def test_update_is_all_or_nothing_with_one_audit_row_per_change(ctx, user):
    with pytest.raises(policy.PolicyInvalid) as info:
        policy.update({"force_2fa": "all", "step_up_minutes": "0", "trusted_device_days": "x"}, by=user)
    assert set(info.value.errors) == {"step_up_minutes", "trusted_device_days"}
    assert Setting.select().count() == 0
    assert not AuditEvent.select().where(AuditEvent.event == "policy_changed").exists()
    assert policy.update({"force_2fa": "all", "step_up_minutes": "10"}, by=user) == ["force_2fa"]
    [row] = AuditEvent.select().where(AuditEvent.event == "policy_changed")
    assert row.detail == f"force_2fa: off -> all; by {user.account}"
    with pytest.raises(policy.PolicyInvalid):
        policy.update({"colour": "blue"})


def test_a_command_line_change_is_audited_naming_nobody(ctx):
    policy.set_value("trusted_networks", "10.0.0.0/8")
    policy.set_value("trusted_networks", "")
    details = [row.detail for row in AuditEvent.select().where(AuditEvent.event == "policy_changed")]
    assert details == ['trusted_networks: "" -> 10.0.0.0/8', 'trusted_networks: 10.0.0.0/8 -> ""']


def test_the_support_contact_survives_an_unreachable_database(app, ctx, monkeypatch):
    def broken(*_args, **_kwargs):
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(Setting, "get_or_none", broken)
    assert policy.support_contact() == str(app.config["SUPPORT_CONTACT"])


def test_a_snooze_is_counted_by_a_conditional_update(user, client):
    """A stale offer (another browser took the last 稍后绑定 meanwhile) lets nobody in: the UPDATE decides."""
    from portal.models import LoginSession
    from portal.services import bind_later
    from portal.services.errors import NotAllowed

    policy.update({"force_2fa": "all", "force_2fa_snoozes": "1"})
    session = sessions.resolve(sessions.start(user, sessions.BINDING, client))
    User.update(bind_snoozes_used=1).where(User.id == user.id).execute()  # behind session.user's back
    assert session.user.bind_snoozes_used == 0 and bind_later.offer(session.user) is not None
    with pytest.raises(NotAllowed):
        bind_later.snooze(session, client)
    assert LoginSession.get_by_id(session.id).stage == sessions.BINDING
    assert User.get_by_id(user.id).bind_snoozes_used == 1
    assert not AuditEvent.select().where(AuditEvent.event == "binding_snoozed").exists()
