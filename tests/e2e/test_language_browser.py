"""中文 / English in a real browser (#14 item 6): the footer's switch before the login, the login in
English, the choice kept on the account, and another browser that asks for English getting the account's
choice once logged in."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import Page, expect

from portal import crypto
from portal.models import Factor, User
from tests.conftest import PASSWORD
from tests.e2e.pages import Authenticator

pytestmark = pytest.mark.e2e

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
DATA = {"中文"}  # the switch names Chinese in Chinese


def chinese_on(page: Page) -> list[str]:
    return sorted(set(CJK.findall(page.locator("body").inner_text())) - DATA)


def expect_language(page: Page, lang: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", lang)


def switch_to(page: Page, name: str) -> None:
    page.locator("footer").get_by_role("button", name=name).click()


def log_in_by_fields(page: Page, account: str, code: str) -> None:
    """The login and the second step by field names, whatever language their labels are in."""
    page.locator("input[name=account]").fill(account)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form:has(input[name=password]) button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    page.locator("input[name=code]").fill(code)
    page.locator("form:has(input[name=code]) button[type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/$"))


def test_a_user_switches_to_english_and_the_account_keeps_the_choice(live_server, new_page):
    account = live_server.create_user("grace@mail.xamd.edu.cn", name="Grace")
    secret = pyotp.random_base32()
    live_server.run(
        lambda: Factor.create(user=User.get(User.account == account), method="totp", secret=crypto.encrypt(secret))
    )
    authenticator = Authenticator(pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name="e2e"))

    page = new_page()  # a Chinese browser
    page.goto("/login")
    expect_language(page, "zh-CN")
    expect(page.get_by_role("heading", name="邮箱登录")).to_be_visible()

    switch_to(page, "English")  # before the login: a cookie
    expect_language(page, "en")
    expect(page).to_have_url(re.compile(r"/login$"))
    assert not chinese_on(page), chinese_on(page)
    page.screenshot(path="/tmp/e2e-language-login-en.png", full_page=True)

    log_in_by_fields(page, account, authenticator.code())
    expect_language(page, "en")
    assert not chinese_on(page), chinese_on(page)
    page.goto("/settings/security/2fa")
    assert not chinese_on(page), chinese_on(page)
    page.screenshot(path="/tmp/e2e-language-2fa-en.png", full_page=True)

    switch_to(page, "中文")  # logged in: stored on the account
    expect_language(page, "zh-CN")
    expect(page).to_have_url(re.compile(r"/settings/security/2fa$"))
    expect(page.get_by_role("heading", name="二次验证设置")).to_be_visible()
    assert live_server.run(lambda: User.get(User.account == account).language) == "zh_CN"

    other = new_page(locale="en-US")  # another browser that asks for English
    other.goto("/login")
    expect_language(other, "en")
    log_in_by_fields(other, account, authenticator.code())
    expect_language(other, "zh-CN")  # once logged in, the account's choice
    expect(other.get_by_role("heading", name=re.compile("^欢迎"))).to_be_visible()
