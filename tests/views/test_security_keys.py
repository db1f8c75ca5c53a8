"""安全密钥 in the browser flows (the test client plays the browser, a software authenticator the key):
bind, 添加, log in with it (offered first), 删除 one, the last one unbinds; an IP address says why not."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from portal.models import Factor, LoginSession, SecurityKey, utcnow
from portal.services import accounts, throttle
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.support.webauthn_authenticator import SoftAuthenticator
from tests.views.support import PAGE, complete_login, location

ORIGIN = "http://localhost:8000"
pytestmark = pytest.mark.app_config(PUBLIC_URL=ORIGIN)


def options_of(response) -> str:
    found = re.search(r'data-webauthn-options="([^"]*)"', text(response))
    assert found, text(response)
    return html.unescape(found.group(1))


@pytest.fixture
def keys_user(user):
    accounts.set_policy(user.account, methods="webauthn,totp")
    return user


def bind_key(browser, key: SoftAuthenticator, name: str):
    dialog = browser.get(f"{PAGE}/webauthn/bind", htmx=True)
    credential = key.create(options_of(dialog), ORIGIN)
    return browser.post(f"{PAGE}/webauthn/bind", {"credential": credential, "name": name}, htmx=True)


def test_bind_a_key_then_log_in_with_it_first(browser, keys_user):
    assert location(browser.login(keys_user.account, PASSWORD)) == "/"
    key = SoftAuthenticator()
    assert "绑定成功" in text(bind_key(browser, key, "YubiKey 5"))
    assert SecurityKey.get().name == "YubiKey 5" and Factor.of(keys_user, "webauthn") is not None
    assert "YubiKey 5" in text(browser.get(PAGE))

    browser.post("/logout")
    assert location(browser.login(keys_user.account, PASSWORD)) == "/login/verify"
    page = browser.get("/login/verify")
    assert "使用安全密钥" in text(page)
    answer = key.get(options_of(page), ORIGIN)
    assert location(browser.post("/login/verify", {"method": "webauthn", "code": answer})) == "/"
    assert SecurityKey.get().last_used_at is not None


def test_an_answer_works_once_and_only_for_its_own_challenge(browser, keys_user):
    browser.login(keys_user.account, PASSWORD)
    key = SoftAuthenticator()
    bind_key(browser, key, "")
    browser.post("/logout")
    browser.login(keys_user.account, PASSWORD)
    stale = key.get(options_of(browser.get("/login/verify")), ORIGIN)
    answer = key.get(options_of(browser.get("/login/verify")), ORIGIN)  # a new page: a new challenge
    assert "安全密钥验证失败" in text(browser.post("/login/verify", {"method": "webauthn", "code": stale}))
    browser.get("/login/verify")
    refused = browser.post("/login/verify", {"method": "webauthn", "code": answer})  # its challenge was replaced
    assert refused.status_code != 302
    assert (
        location(
            browser.post(
                "/login/verify",
                {"method": "webauthn", "code": key.get(options_of(browser.get("/login/verify")), ORIGIN)},
            )
        )
        == "/"
    )


def test_add_a_second_key_after_a_fresh_verification_and_delete_one(browser, keys_user, totp_secret, clock):
    complete_login(browser, keys_user.account, totp_secret, clock)
    first, second = SoftAuthenticator(), SoftAuthenticator()
    assert "绑定成功" in text(bind_key(browser, first, "钥匙一"))
    assert "添加</a>" in text(browser.get(PAGE))
    assert "绑定成功" in text(bind_key(browser, second, "钥匙二"))  # verified a moment ago
    assert [k.name for k in SecurityKey.select().order_by(SecurityKey.id)] == ["钥匙一", "钥匙二"]
    one = SecurityKey.get(SecurityKey.name == "钥匙一")
    done = browser.post(f"{PAGE}/webauthn/credentials/{one.id}/delete", htmx=True)
    assert "删除成功" in text(done)
    assert [k.name for k in SecurityKey.select()] == ["钥匙二"] and Factor.of(keys_user, "webauthn")
    last = SecurityKey.get()
    assert "删除成功" in text(browser.post(f"{PAGE}/webauthn/credentials/{last.id}/delete", htmx=True))
    assert not SecurityKey.select().exists() and Factor.of(keys_user, "webauthn") is None


@pytest.mark.app_config(PUBLIC_URL="http://127.0.0.1:8000")
def test_an_ip_address_public_url_says_why_the_method_is_unavailable(browser, keys_user):
    browser.login(keys_user.account, PASSWORD)
    row = text(browser.get(PAGE)).split('data-method="webauthn"', 1)[1].split("</tr>", 1)[0]
    assert "暂不可用" in row and "IP 地址" in row and "绑定</a>" not in row


def test_deleting_a_key_needs_a_fresh_verification_and_ends_other_sessions(
    browser, new_browser, keys_user, totp_secret, clock
):
    complete_login(browser, keys_user.account, totp_secret, clock)
    bind_key(browser, SoftAuthenticator(), "钥匙一")
    bind_key(browser, SoftAuthenticator(), "钥匙二")
    elsewhere = new_browser()
    complete_login(elsewhere, keys_user.account, totp_secret, clock)
    one = SecurityKey.get(SecurityKey.name == "钥匙一")

    LoginSession.update(verified_at=utcnow() - timedelta(hours=1)).where(LoginSession.ended_at.is_null()).execute()
    asked = browser.post(f"{PAGE}/webauthn/credentials/{one.id}/delete", htmx=True)
    assert "安全验证" in text(asked) and SecurityKey.select().count() == 2  # nothing removed yet

    verified = browser.post(
        "/settings/security/verify/remove-key", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=True
    )
    assert verified.status_code == 200
    assert "删除成功" in text(browser.post(f"{PAGE}/webauthn/credentials/{one.id}/delete", htmx=True))
    assert [k.name for k in SecurityKey.select()] == ["钥匙二"]
    assert location(elsewhere.get(PAGE)).startswith("/login")  # invariant 14: the other browser is out


def test_change_verified_by_the_key_replaces_every_key_by_the_new_one(browser, keys_user):
    browser.login(keys_user.account, PASSWORD)
    old = SoftAuthenticator()
    bind_key(browser, old, "旧钥匙")
    dialog = browser.get(f"{PAGE}/webauthn/change", htmx=True)
    answer = old.get(options_of(dialog), ORIGIN)
    new_dialog = browser.post(f"{PAGE}/webauthn/change", {"via": "webauthn", "code": answer}, htmx=True)
    assert "修改安全密钥" in text(new_dialog) and SecurityKey.get().name == "旧钥匙"  # kept until confirmed
    new = SoftAuthenticator()
    credential = new.create(options_of(new_dialog), ORIGIN)
    done = browser.post(f"{PAGE}/webauthn/bind", {"credential": credential, "name": "新钥匙"}, htmx=True)
    assert "绑定成功" in text(done)
    assert [k.name for k in SecurityKey.select()] == ["新钥匙"]


def test_a_wrong_answer_at_the_second_step_counts_a_failure(browser, keys_user):
    browser.login(keys_user.account, PASSWORD)
    key = SoftAuthenticator()
    bind_key(browser, key, "")
    browser.post("/logout")
    browser.login(keys_user.account, PASSWORD)
    stale = key.get(options_of(browser.get("/login/verify")), ORIGIN)
    browser.get("/login/verify")  # a new challenge: the answer above no longer fits
    assert "安全密钥验证失败" in text(browser.post("/login/verify", {"method": "webauthn", "code": stale}))
    assert throttle.failures("otp", keys_user.account) == 1
