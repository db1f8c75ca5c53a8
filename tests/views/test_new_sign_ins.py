"""New device / new place through the real login pages: the portal_browser cookie, and risk step-up."""

from __future__ import annotations

from portal.models import AuditEvent, SeenSignIn
from portal.services import policy
from portal.web.guard import BROWSER_COOKIE
from tests.conftest import PASSWORD
from tests.views.support import complete_login, location

BEIJING, GUANGDONG = "202.106.0.20", "113.108.81.189"


def events(name: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.event == name).order_by(AuditEvent.id))


def at(browser, ip: str):
    browser.client.environ_base["REMOTE_ADDR"] = ip
    return browser


def test_the_login_page_gives_a_long_lived_browser_id(browser):
    response = browser.get("/login")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{BROWSER_COOKIE}="))
    assert "HttpOnly" in cookie and "Max-Age=34560000" in cookie
    again = browser.get("/login").headers.getlist("Set-Cookie")
    assert not any(c.startswith(f"{BROWSER_COOKIE}=") for c in again)  # kept, not given anew


def test_a_second_browser_is_a_new_device_the_same_one_is_not(new_browser, user, totp_secret, clock):
    first = at(new_browser(), BEIJING)
    complete_login(first, user.account, totp_secret, clock)  # the first login: remembered, nothing mailed
    first.post("/logout")
    complete_login(first, user.account, totp_secret, clock)
    assert events("sign_in_new_device") == []
    complete_login(at(new_browser(), BEIJING), user.account, totp_secret, clock)
    assert len(events("sign_in_new_device")) == 1 and events("sign_in_new_place") == []
    assert SeenSignIn.select().where(SeenSignIn.kind == "device").count() == 2


def test_risk_step_up_through_the_pages(browser, user, totp_secret, clock):
    policy.set_value("risk_step_up", "on")
    complete_login(at(browser, BEIJING), user.account, totp_secret, clock, trust=True)
    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/"  # same province: the trusted device skips
    browser.post("/logout")
    assert location(at(browser, GUANGDONG).login(user.account, PASSWORD)) == "/login/verify"  # new province
