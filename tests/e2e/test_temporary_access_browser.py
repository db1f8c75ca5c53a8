"""临时访问码 in a real browser: the helpdesk finds a user who lost the phone by prefix and issues a code;
the user logs in with it, is sent to 二次验证设置, 修改 the lost 第三方 OTP and reaches the 欢迎页."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import expect

from portal import crypto
from portal.models import Factor
from portal.services import accounts
from tests.e2e.pages import (
    Authenticator,
    dialog,
    expect_modal_dialog,
    expect_twofa_page,
    expect_welcome,
    log_in,
    pass_second_step,
    read_enrollment,
    submit_dialog,
    totp_row,
)

pytestmark = pytest.mark.e2e

DESK = "desk@mail.xamd.edu.cn"
USER = "lisi.lost@mail.xamd.edu.cn"


def _bound_totp(account: str) -> Authenticator:
    secret = pyotp.random_base32()
    user = accounts.get(account)
    Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
    return Authenticator(pyotp.TOTP(secret).provisioning_uri(name=account))


def test_helpdesk_issues_a_code_and_the_user_binds_again(live_server, new_page):
    def setup():
        accounts.create(DESK, "Correct-horse-9", name="服务台")
        accounts.set_role(DESK, "helpdesk", by=None, client=None, reason="e2e")
        return _bound_totp(DESK)

    desk_app = live_server.run(setup)
    live_server.create_user(USER, name="李四")
    live_server.run(lambda: _bound_totp(USER))  # on the phone Li Si lost

    # The helpdesk logs in (second step by its own authenticator) and finds Li Si by a prefix.
    desk = new_page()
    log_in(desk, DESK, "Correct-horse-9")
    pass_second_step(desk, desk_app.code())
    desk.goto("/admin/users")
    desk.get_by_label("邮箱账号或姓名").fill("lisi.lo")
    desk.get_by_role("button", name="查找").click()
    expect(desk.locator("[data-field='methods']")).to_contain_text("第三方 OTP")
    panel = desk.locator("#temporary-code")
    panel.get_by_label(re.compile("签发原因")).fill("手机丢失,工单 #3721")
    expect(panel.get_by_label("有效期")).to_have_value("60")
    desk.evaluate("window.__e2eSameDocument = true")
    panel.get_by_role("button", name="签发临时访问码").click()
    shown = desk.locator("[data-temporary-code]")
    expect(shown).to_have_text(re.compile(r"^\d{4} \d{4}$"))
    assert desk.evaluate("window.__e2eSameDocument === true"), "issuing reloaded the page"
    code = shown.inner_text()
    expect(desk.locator("[data-temporary-active]")).to_contain_text("当前有一个有效的临时访问码")

    # Li Si, in another browser: password, then 使用临时访问码.
    user = new_page()
    log_in(user, USER)
    expect(user).to_have_url(re.compile(r"/login/verify$"))
    user.get_by_role("link", name="使用临时访问码").click()
    user.get_by_label("临时访问码").fill(code)
    user.get_by_role("button", name="确定").click()

    # 二次验证设置: the lost 第三方 OTP is replaced (修改) without the old phone.
    expect_twofa_page(user)
    expect(user.get_by_role("alert")).to_contain_text("您已使用临时访问码完成本次验证")
    user.goto("/")  # nothing else is reachable yet
    expect_twofa_page(user)
    totp_row(user).get_by_role("button", name="修改").click()
    box = expect_modal_dialog(user, "修改第三方 OTP:绑定新的验证器")
    authenticator = read_enrollment(box)
    submit_dialog(box, authenticator.code(), "绑定")
    expect_modal_dialog(user, "绑定成功")
    dialog(user).get_by_role("link", name="进入邮箱").click()
    expect_welcome(user)

    # The code is spent: the helpdesk's page no longer shows an active one.
    desk.reload()
    expect(desk.locator("[data-temporary-active]")).to_have_count(0)
