"""Admin policy: offered methods and forced binding."""

from __future__ import annotations

import pytest

from portal.models import Setting, User
from portal.services import factors, policy
from portal.services.errors import InvalidInput


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
