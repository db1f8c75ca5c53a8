"""Language (#14 item 6): zh-CN by default; English chosen by the browser before login, by the footer's
switch (a cookie before login, the account's own setting after), and kept by the account."""

from __future__ import annotations

from portal.models import User
from tests.conftest import PASSWORD
from tests.helpers import Browser, text
from tests.views.support import complete_login

ENGLISH = "Questions? Contact"
CHINESE = "如有疑问请联系"


def test_chinese_unless_the_browser_prefers_english(browser):
    page = text(browser.get("/login"))
    assert CHINESE in page and '<html lang="zh-CN">' in page
    assert CHINESE in text(browser.get("/login", Accept_Language="zh-TW,zh;q=0.9,en;q=0.5"))
    assert CHINESE in text(browser.get("/login", Accept_Language="fr"))  # neither offered: the default
    english = text(browser.get("/login", Accept_Language="en-US,en;q=0.9"))
    assert ENGLISH in english and '<html lang="en">' in english and CHINESE not in english


def test_the_switch_before_login_keeps_the_choice_in_a_cookie(browser):
    response = browser.post("/language", {"language": "en", "next": "/login?next=%2Fsettings"})
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=%2Fsettings"
    assert browser.cookie("portal_lang") == "en"
    assert ENGLISH in text(browser.get("/login", Accept_Language="zh-CN"))  # the choice beats the browser
    browser.post("/language", {"language": "zh_CN", "next": "/login"})
    assert CHINESE in text(browser.get("/login", Accept_Language="en"))


def test_the_switch_goes_back_only_to_this_site(browser):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", ""):
        response = browser.post("/language", {"language": "en", "next": target})
        assert response.headers["Location"] == "/"


def test_an_unknown_language_follows_the_browser_again(browser):
    browser.post("/language", {"language": "en"})
    browser.post("/language", {"language": "klingon"})
    assert browser.cookie("portal_lang") in (None, "")
    assert CHINESE in text(browser.get("/login"))


def test_the_switch_needs_the_page_csrf_token(browser):
    refused = browser.post("/language", {"language": "en"}, csrf=False)
    assert refused.status_code == 400 and browser.cookie("portal_lang") is None


def test_the_account_keeps_its_language_on_every_browser(app, browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    browser.post("/language", {"language": "en", "next": "/"})
    assert User.get_by_id(user.id).language == "en"

    other = Browser(app.test_client())
    complete_login(other, user.account, totp_secret, clock)
    assert ENGLISH in text(other.get("/", Accept_Language="zh-CN"))  # the account's choice, not the browser's
    other.post("/language", {"language": "zh_CN", "next": "/"})
    assert User.get_by_id(user.id).language == "zh_CN"
    assert CHINESE in text(browser.get("/", Accept_Language="en"))


def test_the_password_step_already_speaks_the_accounts_language(browser, user, totp_secret):
    User.update(language="en").where(User.id == user.id).execute()
    browser.login(user.account, PASSWORD)  # half logged in: the account is known
    assert ENGLISH in text(browser.get("/login/verify"))
