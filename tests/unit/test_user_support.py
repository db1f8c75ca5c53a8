"""用户支持 services: search, the account summary, the reason rule and the actions that are not plain
account changes (退出所有会话, 移除信任设备, per-user methods)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal import crypto
from portal.models import AuditEvent, Factor, LoginSession, TrustedDevice, utcnow
from portal.services import accounts, app_passwords, policy, sessions, trust, user_support
from portal.services.client import Client
from portal.services.errors import InvalidInput, NotAllowed, NotFound
from tests.conftest import PASSWORD

CLIENT = Client(ip="203.0.113.5", user_agent="Mozilla/5.0 (Windows NT 10.0) Chrome/120.0")


@pytest.fixture
def admin(ctx):
    return accounts.create("root@mail.xamd.edu.cn", PASSWORD, admin=True)


def open_session(user, stage: str = sessions.FULL) -> LoginSession:
    sessions.start(user, stage, CLIENT)
    return LoginSession.select().where(LoginSession.user == user).order_by(LoginSession.id.desc()).get()


def last(event: str) -> AuditEvent:
    return AuditEvent.select().where(AuditEvent.event == event).order_by(AuditEvent.id.desc()).get()


def test_find_accounts_by_the_start_of_the_address_or_the_name(user):
    accounts.create("bob@mail.xamd.edu.cn", PASSWORD, name="Alibaba")
    assert [u.account for u in user_support.find_accounts(" alic ")] == ["alice@mail.xamd.edu.cn"]
    assert [u.account for u in user_support.find_accounts("ALI")] == ["alice@mail.xamd.edu.cn", "bob@mail.xamd.edu.cn"]
    assert user_support.find_accounts("") == [] and user_support.find_accounts("_") == []


def test_find_accounts_lists_at_most_the_limit(ctx):
    for i in range(user_support.SEARCH_LIMIT + 3):
        accounts.create(f"u{i:02d}@x.cn", PASSWORD)
    assert len(user_support.find_accounts("u")) == user_support.SEARCH_LIMIT


def test_account_summary_of_an_unknown_account_is_not_found(ctx):
    with pytest.raises(NotFound, match="账号不存在"):
        user_support.account_summary("ghost@x.cn")


def test_account_summary_lists_what_the_account_has(user):
    Factor.create(user=user, method="totp", secret=crypto.encrypt("JBSWY3DPEHPK3PXP"), label="Pixel 8")
    app_passwords.create(user, "Thunderbird", CLIENT)
    live = open_session(user)
    open_session(user, sessions.SECOND_FACTOR)  # half logged in: not listed
    ended = open_session(user)
    sessions.end(ended, "logout")
    trust.issue(user, CLIENT, "totp")

    summary = user_support.account_summary(user.account.upper())
    assert [(f.key, f.label, f.description) for f in summary.factors] == [("totp", "第三方 OTP", "Pixel 8")]
    assert summary.methods == ["第三方 OTP"]
    assert [p.name for p in summary.app_passwords] == ["Thunderbird"]
    assert [s.id for s in summary.sessions] == [live.id]
    assert len(summary.trusted_devices) == 1 and summary.locks == {} and summary.force_mode == "off"
    assert {c.key for c in summary.method_choices} == {"totp", "email", "sms", "token", "webauthn"}


def test_a_session_past_its_idle_time_is_not_listed(user, app):
    idle = open_session(user)
    idle_for = timedelta(minutes=int(app.config["SESSION_IDLE_MINUTES"]) + 1)
    LoginSession.update(last_seen_at=utcnow() - idle_for).where(LoginSession.id == idle.id).execute()
    assert user_support.live_sessions(user) == []


@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n"])
def test_a_reason_is_required(raw):
    with pytest.raises(InvalidInput, match="请填写操作原因"):
        user_support.require_reason(raw)


def test_a_reason_is_tidied_and_bounded():
    assert user_support.require_reason("  工单   #12 \n 手机丢失 ") == "工单 #12 手机丢失"
    assert user_support.require_reason("x" * 200) == "x" * 200
    with pytest.raises(InvalidInput, match="200"):
        user_support.require_reason("x" * 201)


def test_end_sessions_ends_every_session_and_is_audited(user, admin):
    full, pending = open_session(user), open_session(user, sessions.SECOND_FACTOR)
    assert user_support.end_sessions(user.account, "工单 1", by=admin, client=CLIENT) == 2
    for row in (full, pending):
        assert LoginSession.get_by_id(row.id).end_reason == "ended_by_admin"
    event = last("user_sessions_ended")
    assert event.detail == "count=2; by root@mail.xamd.edu.cn; reason: 工单 1" and event.ip == CLIENT.ip


def test_end_sessions_keeps_the_acting_session(admin):
    mine, other = open_session(admin), open_session(admin)
    assert user_support.end_sessions(admin.account, "r", by=admin, keep=mine) == 1
    assert LoginSession.get_by_id(mine.id).ended_at is None and LoginSession.get_by_id(other.id).ended_at


def test_remove_one_trusted_device_of_the_user_only(user, admin):
    trust.issue(user, CLIENT, "totp")
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    trust.issue(bob, CLIENT, "totp")
    mine, bobs = (TrustedDevice.get(TrustedDevice.user == u) for u in (user, bob))
    with pytest.raises(NotFound):
        user_support.remove_trusted_devices(user.account, "r", by=admin, device_id=bobs.id)
    assert user_support.remove_trusted_devices(user.account, "工单 2", by=admin, device_id=mine.id) == 1
    assert TrustedDevice.get_by_id(mine.id).revoked_at and TrustedDevice.get_by_id(bobs.id).revoked_at is None
    assert last("trusted_device_revoked").detail == f"id={mine.id}; by root@mail.xamd.edu.cn; reason: 工单 2"
    with pytest.raises(NotFound):  # gone already
        user_support.remove_trusted_devices(user.account, "r", by=admin, device_id=mine.id)


def test_remove_all_trusted_devices(user, admin):
    trust.issue(user, CLIENT, "totp")
    trust.issue(user, CLIENT, "totp")
    assert user_support.remove_trusted_devices(user.account, "工单 3", by=admin) == 2
    assert trust.active(user) == []
    assert "by root@mail.xamd.edu.cn; reason: 工单 3" in last("trusted_devices_revoked").detail


def test_extra_methods_only_those_not_enabled_for_everyone(user, admin):
    with pytest.raises(InvalidInput, match="app"):
        user_support.set_extra_methods(user.account, ["app"], "r", by=admin)
    with pytest.raises(InvalidInput, match="fax"):
        user_support.set_extra_methods(user.account, ["fax"], "r", by=admin)
    assert accounts.get(user.account).extra_methods == ""
    user_support.set_extra_methods(user.account, ["email", "totp"], "工单 4", by=admin, client=CLIENT)
    assert accounts.get(user.account).extra_methods == "totp,email"  # in the order of METHODS
    assert "by root@mail.xamd.edu.cn; reason: 工单 4" in last("user_policy_changed").detail
    policy.set_value("enabled_methods", "app,wechat,email")
    user_support.set_extra_methods(user.account, [], "r", by=admin)
    assert accounts.get(user.account).extra_methods == "email"  # not offered any more, so kept


def test_account_services_name_the_admin_and_the_reason(user, admin):
    accounts.unlock(user.account, by=admin, client=CLIENT, reason="工单 5")
    assert last("user_unlocked").detail == "0 counter(s); by root@mail.xamd.edu.cn; reason: 工单 5"
    accounts.set_disabled(user.account, True, by=admin, client=CLIENT, reason="工单 6")
    assert last("user_disabled").detail == "by root@mail.xamd.edu.cn; reason: 工单 6"
    accounts.set_policy(user.account, force=True, by=admin, client=CLIENT, reason="工单 7")
    assert last("user_policy_changed").detail == "{'force_2fa': True}; by root@mail.xamd.edu.cn; reason: 工单 7"
    assert last("user_policy_changed").ip == CLIENT.ip


def test_only_admins_act_on_staff_accounts(user, admin):
    helpdesk = accounts.create("desk@mail.xamd.edu.cn", PASSWORD)
    accounts.set_role(helpdesk.account, "helpdesk")
    helpdesk = accounts.get(helpdesk.account)
    user_support.check_may_act(helpdesk, user.account)  # an ordinary account: yes
    user_support.check_may_act(admin, helpdesk.account)
    user_support.check_may_act(None, admin.account)  # the CLI
    with pytest.raises(NotAllowed, match="只能由管理员操作"):
        user_support.check_may_act(helpdesk, admin.account)
    with pytest.raises(NotAllowed):
        user_support.check_may_act(helpdesk, helpdesk.account)
