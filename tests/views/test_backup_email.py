"""备用邮箱 in the pages: 绑定 with a mailed code, login, 解绑 and 修改 by mailed codes (real SMTP: aiosmtpd)."""

from __future__ import annotations

import pytest

from portal import crypto
from portal.models import Factor, MailedCode
from portal.services import accounts
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import PAGE, location, rows

BACKUP = "alice.backup@example.org"
MASKED = "a***p@example.org"
SEND = f"{PAGE}/email/send"
CONFIRM = f"{PAGE}/email/bind"


@pytest.fixture
def email_user(user, outbox):
    """alice, with 备用邮箱 enabled by the admin and mail going to the test's SMTP server."""
    return accounts.set_policy(user.account, methods="email")


@pytest.fixture
def logged_in(browser, email_user):
    assert location(browser.login(email_user.account, PASSWORD)) == "/"
    return browser


def mailed(outbox, action, address: str = BACKUP) -> tuple[object, str]:
    """Do ``action()`` (which mails a code to ``address``); its response and the code."""
    before = len(outbox.handler.to(address))
    response = action()
    return response, outbox.code_for(address, after=before)


def bind(browser, outbox, address: str = BACKUP):
    browser.get(f"{PAGE}/email/bind", htmx=True)
    _, code = mailed(outbox, lambda: browser.post(SEND, {"address": address}, htmx=True), address)
    return browser.post(CONFIRM, {"code": code}, htmx=True)


def email_factor(user) -> Factor | None:
    return Factor.get_or_none((Factor.user == user) & (Factor.method == "email"))


# --- 绑定 ---


def test_bind_from_the_dialog(logged_in, outbox, email_user):
    assert "绑定</a>" in rows(logged_in.get(PAGE))["email"]
    dialog = logged_in.get(f"{PAGE}/email/bind", htmx=True)
    assert "备用邮箱绑定" in text(dialog) and 'name="address"' in text(dialog) and 'name="code"' not in text(dialog)

    sent, code = mailed(outbox, lambda: logged_in.post(SEND, {"address": BACKUP}, htmx=True))
    assert f"验证码已发送至 {MASKED}" in text(sent) and 'name="code"' in text(sent)
    assert f'value="{BACKUP}"' in text(sent)  # the typed address stays for 重新发送

    done = logged_in.post(CONFIRM, {"code": code}, htmx=True)
    assert "绑定成功" in text(done) and done.headers["HX-Trigger"] == "factorsChanged"
    assert crypto.decrypt(email_factor(email_user).secret) == BACKUP
    row = rows(logged_in.get(PAGE))["email"]
    assert "已绑定" in row and MASKED in row and BACKUP not in row


def test_without_javascript_the_dialog_is_a_page(logged_in, outbox, email_user):
    _, code = mailed(outbox, lambda: logged_in.post(SEND, {"address": BACKUP}))
    response = logged_in.post(CONFIRM, {"code": code})
    assert "<html" in text(response) and "绑定成功" in text(response)
    assert email_factor(email_user) is not None


def test_a_wrong_code_keeps_the_dialog_and_binds_nothing(logged_in, outbox, email_user):
    _, code = mailed(outbox, lambda: logged_in.post(SEND, {"address": BACKUP}, htmx=True))
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    response = logged_in.post(CONFIRM, {"code": wrong}, htmx=True)
    assert "验证码错误或已过期" in text(response) and f"验证码已发送至 {MASKED}" in text(response)
    assert email_factor(email_user) is None


@pytest.mark.parametrize("address", ["not-an-address", "alice@mail.xamd.edu.cn"])
def test_a_bad_address_is_refused_in_the_dialog(logged_in, outbox, address):
    before = len(outbox.handler.deliveries)
    response = logged_in.post(SEND, {"address": address}, htmx=True)
    assert response.status_code == 200 and 'role="alert"' in text(response)
    assert f'value="{address}"' in text(response) and "备用邮箱绑定" in text(response)
    assert len(outbox.handler.deliveries) == before


def test_a_dead_mail_server_is_a_clear_error(logged_in, app, email_user):
    app.config["SMTP_URL"] = "smtp://127.0.0.1:9"
    response = logged_in.post(SEND, {"address": BACKUP}, htmx=True)
    assert "验证码邮件发送失败" in text(response) and not MailedCode.select().exists()


def test_not_offered_without_the_admins_policy(browser, user, outbox):
    assert location(browser.login(user.account, PASSWORD)) == "/"
    assert "绑定</a>" not in rows(browser.get(PAGE))["email"]
    assert "需由管理员开通" in text(browser.get(f"{PAGE}/email/bind", htmx=True))
    assert "需由管理员开通" in text(browser.post(SEND, {"address": BACKUP}, htmx=True))


# --- the second step at login ---


def test_log_in_with_a_mailed_code(new_browser, logged_in, outbox, email_user):
    bind(logged_in, outbox)
    browser = new_browser()
    assert location(browser.login(email_user.account, PASSWORD)) == "/login/verify"
    page = text(browser.get("/login/verify"))
    assert f"发送到您的备用邮箱 {MASKED}" in page and "发送验证码" in page
    assert "验证码已发送至" not in page  # nothing is mailed before the person asks

    sent, code = mailed(outbox, lambda: browser.post("/login/verify/send-code", {"method": "email"}))
    assert location(sent) == "/login/verify"
    assert f"验证码已发送至 {MASKED}" in text(browser.get(location(sent) + "?method=email"))
    assert location(browser.post("/login/verify", {"method": "email", "code": code})) == "/"


def test_sending_again_at_once_asks_to_wait(new_browser, logged_in, outbox, email_user):
    bind(logged_in, outbox)
    browser = new_browser()
    browser.login(email_user.account, PASSWORD)
    browser.post("/login/verify/send-code", {"method": "email"})
    again = browser.post("/login/verify/send-code", {"method": "email"})
    assert again.status_code == 429 and "秒后重新发送" in text(again)


# --- 解绑 and 修改, verified by a mailed code ---


def test_unbind_by_a_mailed_code(logged_in, outbox, email_user):
    bind(logged_in, outbox)
    dialog = text(logged_in.get(f"{PAGE}/email/unbind", htmx=True))
    assert "解绑备用邮箱前,输入发送到备用邮箱的验证码" in dialog
    assert f"验证码将发送到您的备用邮箱 {MASKED}" in dialog and "发送验证码" in dialog
    sent, code = mailed(outbox, lambda: logged_in.post(f"{PAGE}/email/unbind/send-code", {"via": "email"}, htmx=True))
    assert f"验证码已发送至 {MASKED}" in text(sent)
    done = logged_in.post(f"{PAGE}/email/unbind", {"via": "email", "code": code}, htmx=True)
    assert "解绑成功" in text(done) and email_factor(email_user) is None


def test_change_the_address(logged_in, outbox, email_user):
    bind(logged_in, outbox)
    _, code = mailed(outbox, lambda: logged_in.post(f"{PAGE}/email/change/send-code", {"via": "email"}, htmx=True))
    dialog = logged_in.post(f"{PAGE}/email/change", {"via": "email", "code": code}, htmx=True)
    assert "修改备用邮箱:绑定新的邮箱" in text(dialog)
    done = bind(logged_in, outbox, "new.box@example.org")
    assert "绑定成功" in text(done)
    assert crypto.decrypt(email_factor(email_user).secret) == "new.box@example.org"
