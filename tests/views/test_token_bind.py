"""动态口令 on the pages: the bind dialog (serial + code; a wrong code keeps the serial), then the second step."""

from __future__ import annotations

import pyotp
import pytest

from portal.models import Factor
from portal.services import hardware_tokens
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import PAGE, location

SECRET = pyotp.random_base32()


@pytest.fixture
def token(user):
    hardware_tokens.import_file(
        f"serial,secret,type,digits,period,counter\nTOK-7,{SECRET},hotp,6,30,0\n".encode(), fmt="csv"
    )
    hardware_tokens.assign("TOK-7", user.account)
    return pyotp.HOTP(SECRET)


def test_bind_from_the_dialog_and_log_in_with_the_token(browser, user, token):
    assert location(browser.login(user.account, PASSWORD)) == "/"
    row = text(browser.get(PAGE)).split('data-method="token"', 1)[1].split("</tr>", 1)[0]
    assert "绑定</a>" in row  # offered: the admin assigned a token
    dialog = text(browser.get(f"{PAGE}/token/bind", htmx=True))
    assert "动态口令绑定" in dialog and 'name="serial"' in dialog

    wrong = browser.post(
        f"{PAGE}/token/bind", {"serial": "TOK-7", "code": "000000" if token.at(0) != "000000" else "111111"}, htmx=True
    )
    assert "动态口令错误" in text(wrong) and 'value="TOK-7"' in text(wrong) and Factor.select().count() == 0
    assert "绑定成功" in text(browser.post(f"{PAGE}/token/bind", {"serial": "TOK-7", "code": token.at(0)}, htmx=True))
    assert "序列号 TOK-7" in text(browser.get(PAGE))

    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"
    page = text(browser.get("/login/verify"))
    assert "动态口令" in page and "按下动态口令令牌的按键" in page
    assert location(browser.post("/login/verify", {"method": "token", "code": token.at(1)})) == "/"
