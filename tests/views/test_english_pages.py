"""Every page and dialog in English (#14 item 6) for an account that chose English: no Chinese left
but what is data (the language switch's 中文, place names from the IP database)."""

from __future__ import annotations

import re

import pytest

from portal import crypto
from portal.models import Factor, User
from portal.services import accounts, app_passwords
from portal.services.client import Client
from portal.services.factors import METHODS
from tests.conftest import PASSWORD
from tests.helpers import Browser, text
from tests.views.support import complete_login

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
DATA = {"中文"}  # the switch names Chinese in Chinese

PAGES = [
    "/",
    "/settings",
    "/settings/security",
    "/settings/security/2fa",
    "/settings/security/app-passwords",
    "/settings/security/devices",
    "/settings/security/password",
    "/settings/security/recovery-codes",
    "/settings/security/secure",
    "/settings/security/sessions",
    "/settings/security/activity",
    "/settings/security/sessions/end-others",
    "/settings/security/devices/revoke-all",
    "/settings/security/verify/app-password",
    "/settings/security/2fa/totp/unbind",
    "/settings/security/2fa/totp/change",
    "/no-such-page",
]


def chinese_in(body: str) -> list[str]:
    return sorted({match for match in CJK.findall(body) if match not in DATA})


@pytest.fixture
def english(app, user, totp_secret, clock) -> Browser:
    Factor.create(user=user, method="email", secret=crypto.encrypt("alice.backup@example.org"))
    app_passwords.create(user, "Thunderbird", Client(ip="127.0.0.1", user_agent="pytest"))
    User.update(language="en").where(User.id == user.id).execute()
    browser = Browser(app.test_client())
    complete_login(browser, user.account, totp_secret, clock)
    return browser


@pytest.mark.parametrize("path", PAGES)
def test_settings_pages_and_dialogs(english, path):
    for htmx in (False, True):
        body = text(english.get(path, htmx=htmx))
        assert not chinese_in(body), (path, htmx, chinese_in(body))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_bind_dialog(english, method):
    body = text(english.get(f"/settings/security/2fa/{method}/bind", htmx=True))
    assert not chinese_in(body), chinese_in(body)


def test_the_login_and_the_second_step(app, user, totp_secret):
    browser = Browser(app.test_client())
    assert not chinese_in(text(browser.get("/login", Accept_Language="en")))
    wrong = browser.post("/login", {"account": user.account, "password": "wrong"}, Accept_Language="en")
    assert not chinese_in(text(wrong)), chinese_in(text(wrong))
    Factor.create(user=user, method="email", secret=crypto.encrypt("alice.backup@example.org"))
    User.update(language="en").where(User.id == user.id).execute()
    browser.login(user.account, PASSWORD)
    for method in ("", "?method=totp", "?method=email", "?method=recovery"):
        body = text(browser.get(f"/login/verify{method}"))
        assert not chinese_in(body), (method, chinese_in(body))
    refused = browser.post("/login/verify", {"method": "totp", "code": "000000"})
    assert not chinese_in(text(refused)), chinese_in(text(refused))


def test_the_admin_console(app, ctx, clock):
    admin = accounts.create("root@mail.xamd.edu.cn", PASSWORD, name="Root", admin=True)
    import pyotp

    secret = pyotp.random_base32()
    Factor.create(user=admin, method="totp", secret=crypto.encrypt(secret))
    User.update(language="en").where(User.id == admin.id).execute()
    browser = Browser(app.test_client())
    complete_login(browser, admin.account, secret, clock)
    for path in ("/admin", "/admin/users?q=root", f"/admin/users?q={admin.account}"):
        body = text(browser.get(path))
        assert not chinese_in(body), (path, chinese_in(body))
