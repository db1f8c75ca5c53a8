"""New device / new place on a completed web login (issue #14 item 4), and risk step-up (invariant test)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import AuditEvent, MailOutbox, SeenSignIn, utcnow
from portal.services import housekeeping, login, new_sign_ins, policy, sessions, trust
from portal.services.client import Client
from tests.conftest import PASSWORD

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
BEIJING, GUANGDONG, SHENZHEN_2 = "202.106.0.20", "113.108.81.189", "61.144.56.100"  # checked once in ip2region


def at(ip: str, browser: str = "browser-one") -> Client:
    return Client.of(ip, UA, browser)


def events(name: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.event == name).order_by(AuditEvent.id))


def subjects() -> list[str]:
    return [row.subject for row in MailOutbox.select().order_by(MailOutbox.id)]


def test_a_second_province_is_a_new_place_and_mails_a_notice(user, outbox):
    new_sign_ins.observe(user, at(BEIJING))  # the account's first login ever: nothing to compare with
    assert events("sign_in_new_place") == [] and events("sign_in_new_device") == [] and subjects() == []
    new_sign_ins.observe(user, at(BEIJING))
    assert subjects() == []
    new_sign_ins.observe(user, at(GUANGDONG))
    [event] = events("sign_in_new_place")
    assert (event.outcome, event.ip, event.user_agent, event.detail) == ("ok", GUANGDONG, UA, "广东省 深圳市")
    assert subjects() == ["【邮箱安全】您的帐号在新的地点登录(异地登录提醒)"]
    body = MailOutbox.get().body
    assert "地点:广东省 深圳市" in body and f"IP:{GUANGDONG}" in body
    new_sign_ins.observe(user, at(SHENZHEN_2))  # another address of the same province: no new place
    assert len(events("sign_in_new_place")) == 1


def test_the_intranet_and_unknown_addresses_are_no_place(user, outbox):
    new_sign_ins.observe(user, at(BEIJING))
    new_sign_ins.observe(user, at("10.1.2.3"))
    new_sign_ins.observe(user, at(""))
    assert events("sign_in_new_place") == []


def test_a_new_browser_is_a_new_device(user, outbox):
    new_sign_ins.observe(user, at(BEIJING, "browser-one"))
    new_sign_ins.observe(user, at(BEIJING, "browser-one"))
    assert events("sign_in_new_device") == []
    new_sign_ins.observe(user, at(BEIJING, "browser-two"))
    [event] = events("sign_in_new_device")
    assert event.detail == "北京市"
    assert subjects() == ["【邮箱安全】您的帐号在新设备上登录"]
    new_sign_ins.observe(user, at(BEIJING, ""))  # a client that keeps no cookie is new every time
    assert len(events("sign_in_new_device")) == 2


def test_a_trusted_device_is_never_a_new_device(user):
    new_sign_ins.observe(user, at(BEIJING, "browser-one"))
    new_sign_ins.observe(user, at(BEIJING, "browser-two"), trusted_device=True)
    assert events("sign_in_new_device") == []


def test_only_the_hmac_of_the_browser_cookie_is_stored(user):
    new_sign_ins.observe(user, at(BEIJING, "browser-one"))
    assert "browser-one" not in {row.value for row in SeenSignIn.select()}


def test_after_ninety_days_a_place_and_a_device_are_new_again_and_are_pruned(user):
    new_sign_ins.observe(user, at(BEIJING, "browser-one"))
    new_sign_ins.observe(user, at(GUANGDONG, "browser-one"))
    SeenSignIn.update(last_at=utcnow() - timedelta(days=91)).where(SeenSignIn.value == "北京").execute()
    new_sign_ins.observe(user, at(BEIJING, "browser-one"))
    assert [e.ip for e in events("sign_in_new_place")] == [GUANGDONG, BEIJING]
    SeenSignIn.update(last_at=utcnow() - timedelta(days=91)).execute()
    assert housekeeping.prune()["seen devices and places"] == 3


def test_completed_logins_observe_both_steps(user, totp_secret, clock):
    """password + second step: the second login from another province is a new place."""
    for ip in (BEIJING, GUANGDONG):
        step = login.password_step(user.account, PASSWORD, at(ip), None, None)
        login.second_step(sessions.resolve(step.token), "totp", clock.code(totp_secret), False, at(ip))
        clock.advance()
    assert [e.ip for e in events("sign_in_new_place")] == [GUANGDONG]


# --- invariant: risk step-up (policy risk_step_up; admins always) -------------------------------


@pytest.fixture
def trusted(user, totp_secret, clock):
    """A trusted device of ``user``, from a login in Beijing."""
    step = login.password_step(user.account, PASSWORD, at(BEIJING), None, None)
    done = login.second_step(sessions.resolve(step.token), "totp", clock.code(totp_secret), True, at(BEIJING))
    clock.advance()
    return done.trust_token


def test_risk_step_up_new_province_asks_the_second_step_on_a_trusted_device(user, trusted):
    policy.set_value("risk_step_up", "on")
    step = login.password_step(user.account, PASSWORD, at(GUANGDONG), None, trusted)
    assert step.stage == sessions.SECOND_FACTOR
    assert events("sign_in_new_place") == []  # not yet: the login is not complete


def test_risk_step_up_same_province_skips(user, trusted):
    policy.set_value("risk_step_up", "on")
    assert login.password_step(user.account, PASSWORD, at(BEIJING), None, trusted).stage == sessions.FULL


def test_risk_step_up_off_skips_from_a_new_province(user, trusted):
    assert policy.get("risk_step_up") == "off"
    step = login.password_step(user.account, PASSWORD, at(GUANGDONG), None, trusted)
    assert step.stage == sessions.FULL
    assert [e.ip for e in events("sign_in_new_place")] == [GUANGDONG]  # noticed all the same


def test_admins_are_stepped_up_from_a_new_place_whatever_the_policy(user, clock, totp_secret):
    user.role = "admin"
    user.save()
    new_sign_ins.observe(user, at(BEIJING))
    assert new_sign_ins.steps_up(user, at(GUANGDONG)) and not new_sign_ins.steps_up(user, at(BEIJING))
    assert trust.issue(user, at(BEIJING), "totp") is None  # and admins have no trusted device to skip with
