"""审计日志 in a real browser: an auditor filters the log and 加载更多 appends the next page in place."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from portal import crypto
from portal.models import AuditEvent, Factor
from portal.services import accounts, audit_search
from tests.conftest import PASSWORD
from tests.e2e.pages import log_in, mark_document, pass_second_step

pytestmark = pytest.mark.e2e

AUDITOR = "auditor@mail.xamd.edu.cn"
SHOTS = os.environ.get("PORTAL_E2E_SCREENSHOTS", "")  # a directory: also save screenshots there


def seed(count: int) -> str:
    """The auditor with 第三方 OTP, and ``count`` failed logins of one account plus other events."""
    user = accounts.create(AUDITOR, PASSWORD, name="审计员")
    accounts.set_role(AUDITOR, "auditor")
    secret = pyotp.random_base32()
    Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
    start = datetime(2026, 9, 1, 1, 0)
    for n in range(count):
        AuditEvent.create(
            account="lisi@mail.xamd.edu.cn",
            event="login_password" if n % 3 else "login_verify",
            method="" if n % 3 else "totp",
            outcome="fail" if n % 2 else "ok",
            ip=f"202.117.{n % 4}.{10 + n}",
            user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
            detail="密码错误" if n % 2 else "",
            created_at=start + timedelta(minutes=n),
        )
    AuditEvent.create(account="wang@mail.xamd.edu.cn", event="locked_out", outcome="locked", ip="10.1.2.3")
    return secret


def test_an_auditor_filters_the_log_and_loads_more(live_server, new_page, monkeypatch):
    monkeypatch.setattr(audit_search, "PAGE_SIZE", 10)
    secret = live_server.run(lambda: seed(25))
    page = new_page(viewport={"width": 1280, "height": 800})
    log_in(page, AUDITOR)
    pass_second_step(page, pyotp.TOTP(secret).now())
    page.goto("/admin")
    page.get_by_role("navigation", name="管理").get_by_role("link", name="审计日志").click()
    expect(page.get_by_role("heading", name="审计日志")).to_be_visible()

    page.get_by_label("账号(开头)").fill("lisi")
    page.get_by_label("IP 或网段").fill("202.117.0.0/16")
    page.get_by_label("开始(北京时间)").fill("2026-09-01")
    page.get_by_role("button", name="查询").click()
    rows = page.locator("#audit-events tbody tr[data-event-id]")
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("登录:二次验证")
    expect(rows.first).to_contain_text("2026-09-01 09:24:00")  # the newest, in Beijing time
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/audit-desktop.png", full_page=True)

    mark_document(page)
    page.get_by_role("link", name="加载更多").click()
    expect(rows).to_have_count(20)
    page.get_by_role("link", name="加载更多").click()
    expect(rows).to_have_count(25)
    expect(page.get_by_role("link", name="加载更多")).to_have_count(0)
    assert page.evaluate("window.__e2eSameDocument === true"), "加载更多 reloaded the page"
    expect(rows.last).to_contain_text("2026-09-01 09:00:00")

    page.get_by_label("IP 或网段").fill("202.117.0.300")
    page.get_by_role("button", name="查询").click()
    expect(page.get_by_role("alert")).to_contain_text("请输入 IP 地址或网段")


def test_the_log_on_a_phone(live_server, new_page, monkeypatch):
    monkeypatch.setattr(audit_search, "PAGE_SIZE", 10)
    secret = live_server.run(lambda: seed(12))
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    log_in(page, AUDITOR)
    pass_second_step(page, pyotp.TOTP(secret).now())
    page.goto("/admin/audit?outcome=fail")
    rows = page.locator("#audit-events tbody tr[data-event-id]")
    expect(rows).to_have_count(6)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px): the table must scroll inside its card"
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/audit-phone.png", full_page=True)
