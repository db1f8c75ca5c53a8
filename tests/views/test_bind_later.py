"""稍后绑定: a user forced to bind may put it off as often as the policy allows, until its deadline; each time is
counted atomically and audited; staff never may; without it the session reaches only the binding pages."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from portal.models import AuditEvent, LoginSession, User, utcnow
from portal.services import accounts, bind_later, policy
from portal.web.guard import SESSION_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import BIND, PAGE, location

LATER = f"{PAGE}/later"


def local_today() -> date:
    from portal.timezone import local

    return date.fromisoformat(local(utcnow(), "%Y-%m-%d"))


@pytest.fixture
def forced(user):
    policy.set_value("force_2fa", "all")
    policy.set_value("force_2fa_snoozes", "2")
    return user


def used(user) -> int:
    return User.get_by_id(user.id).bind_snoozes_used


def test_the_banner_offers_it_with_the_deadline_and_the_times_left(browser, forced):
    deadline = (local_today() + timedelta(days=7)).isoformat()
    policy.set_value("force_2fa_deadline", deadline)
    assert location(browser.login(forced.account, PASSWORD)) == PAGE
    body = text(browser.get(PAGE))
    assert "data-bind-later" in body and "稍后绑定" in body
    assert f"绑定截止日期为 {deadline}(北京时间,含当天);截止前您还可以选择 2 次“稍后绑定”" in body


def test_snoozing_lets_this_session_in_once_and_counts(app, browser, forced, new_browser):
    assert location(browser.login(forced.account, PASSWORD)) == PAGE
    half = browser.cookie(SESSION_COOKIE)
    assert location(browser.get("/")) == PAGE  # invariant 1: before binding or snoozing, only the binding pages
    assert location(browser.get("/settings/security/devices")) == PAGE
    response = browser.post(LATER)
    assert location(response) == "/"
    assert browser.get("/").status_code == 200
    full = browser.cookie(SESSION_COOKIE)
    assert full and full != half  # a new session id
    session = LoginSession.get(LoginSession.user == forced)
    assert session.stage == "full" and session.verified_at is None  # no factor was proved
    assert used(forced) == 1
    snoozed = AuditEvent.get(AuditEvent.event == "binding_snoozed")
    assert snoozed.user_id == forced.id and snoozed.detail == "1/2" and snoozed.ip
    assert AuditEvent.select().where(AuditEvent.event == "login_complete").get().detail == "binding snoozed"
    assert "data-bind-later" not in text(browser.get(PAGE))  # a full session has no banner

    second = new_browser()  # the next login asks again, with one left
    assert location(second.login(forced.account, PASSWORD)) == PAGE
    assert "还可以选择 1 次" in text(second.get(PAGE))
    assert location(second.post(LATER)) == "/"
    third = new_browser()  # none left: binding is required as before
    assert location(third.login(forced.account, PASSWORD)) == PAGE
    assert "data-bind-later" not in text(third.get(PAGE))
    response = third.post(LATER)
    assert response.status_code == 403 and "已不能稍后绑定" in text(response)
    assert location(third.get("/")) == PAGE and used(forced) == 2


def test_not_after_the_deadline(browser, forced, monkeypatch):
    policy.set_value("force_2fa_deadline", local_today().isoformat())  # through the end of today
    assert location(browser.login(forced.account, PASSWORD)) == PAGE
    assert "data-bind-later" in text(browser.get(PAGE))
    end = bind_later.deadline_end()
    assert end - timedelta(days=1) <= utcnow() < end
    monkeypatch.setattr("portal.services.bind_later.utcnow", lambda: end)
    assert "data-bind-later" not in text(browser.get(PAGE))
    assert browser.post(LATER).status_code == 403
    assert location(browser.get("/")) == PAGE and used(forced) == 0
    assert not AuditEvent.select().where(AuditEvent.event == "binding_snoozed").exists()


def test_deadline_is_the_end_of_the_day_in_beijing(ctx):
    policy.set_value("force_2fa_deadline", "2099-03-01")
    assert bind_later.deadline_end().isoformat() == "2099-03-01T16:00:00"  # 24:00 Beijing = 16:00 UTC


def test_none_when_the_policy_allows_none(browser, forced):
    policy.set_value("force_2fa_snoozes", "0")
    assert location(browser.login(forced.account, PASSWORD)) == PAGE
    assert "data-bind-later" not in text(browser.get(PAGE))
    assert browser.post(LATER).status_code == 403 and location(browser.get("/")) == PAGE


def test_staff_never_snooze(new_browser, forced):
    admin = accounts.create("root@mail.xamd.edu.cn", PASSWORD, admin=True)
    browser = new_browser()
    assert location(browser.login(admin.account, PASSWORD)) == PAGE
    assert "data-bind-later" not in text(browser.get(PAGE))
    assert browser.post(LATER).status_code == 403
    assert location(browser.get("/")) == PAGE and used(admin) == 0


def test_a_full_session_has_nothing_to_snooze(browser, user):
    policy.set_value("force_2fa_snoozes", "2")
    assert location(browser.login(user.account, PASSWORD)) == "/"  # not forced
    assert browser.post(LATER).status_code == 409 and used(user) == 0


def test_needs_csrf(browser, forced):
    assert location(browser.login(forced.account, PASSWORD)) == PAGE
    assert browser.post(LATER, csrf=False).status_code == 400
    assert used(forced) == 0


def test_binding_still_works_after_a_snooze_and_the_banner_stays_away(browser, forced, clock):
    from tests.views.support import confirm, dialog_secret

    policy.set_value("enabled_methods", "app,wechat,totp")
    assert location(browser.login(forced.account, PASSWORD)) == PAGE
    browser.post(LATER)
    dialog = browser.get(BIND, htmx=True)
    done = confirm(browser, dialog, clock.next_code(dialog_secret(dialog)))
    assert "绑定成功" in text(done)


def test_the_last_snooze_is_taken_once_under_concurrency(app, forced, new_browser):
    """Two browsers of the same account snoozing at the same time with one left: exactly one gets in."""
    policy.set_value("force_2fa_snoozes", "1")
    browsers = [new_browser() for _ in range(2)]
    for each in browsers:
        assert location(each.login(forced.account, PASSWORD)) == PAGE
        each.get(PAGE)  # its CSRF token
    results = []
    barrier = threading.Barrier(2)

    def snooze(each):
        barrier.wait()
        results.append(each.post(LATER).status_code)

    threads = [threading.Thread(target=snooze, args=(each,)) for each in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [302, 403]
    assert used(forced) == 1
    assert AuditEvent.select().where(AuditEvent.event == "binding_snoozed").count() == 1
