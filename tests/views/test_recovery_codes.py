"""备用码 in the browser: generate (shown once, 下载), 剩余 N 个 on 二次验证设置, log in with one."""

from __future__ import annotations

import re

from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import PAGE, complete_login, location

RECOVERY = "/settings/security/recovery-codes"


def codes_in(response) -> list[str]:
    return re.findall(r"<code data-recovery-code>([^<]+)</code>", text(response))


def test_generate_download_and_log_in_with_a_code(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    assert "生成备用码" in text(browser.get(PAGE))  # offered once a factor is bound
    codes = codes_in(browser.post(RECOVERY))
    assert len(codes) == 10
    download = browser.get(f"{RECOVERY}/download")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    assert all(code in text(download) for code in codes)
    assert 'data-recovery-left="10"' in text(browser.get(PAGE)) and "剩余 10 个" in text(browser.get(PAGE))
    assert codes_in(browser.get(RECOVERY)) == []  # shown once

    browser.post("/logout")
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"
    page = text(browser.get("/login/verify?method=recovery"))
    assert "备用码" in page and 'inputmode="text"' in page
    done = browser.post("/login/verify", {"method": "recovery", "code": codes[0].replace("-", "")})
    assert location(done) == "/"
    assert "您本次使用备用码登录,还剩 9 个备用码" in text(browser.get("/"))
    assert "剩余 9 个" in text(browser.get(PAGE))


def test_a_used_code_is_refused_at_the_second_step(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    code = codes_in(browser.post(RECOVERY))[0]
    for expected in ("/", None):
        browser.post("/logout")
        browser.login(user.account, PASSWORD)
        response = browser.post("/login/verify", {"method": "totp", "code": code})
        if expected:
            assert location(response) == expected
        else:
            assert "备用码错误或已使用" in text(response)
