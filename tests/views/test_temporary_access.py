"""临时访问码: issued by the helpdesk on the user page; at the second step "使用临时访问码" passes it once
and sends the user to bind; that session reaches only the binding pages until a factor is bound."""

from __future__ import annotations

import re

import pyotp
import pytest

from portal import crypto
from portal.models import AuditEvent, Factor, TemporaryAccessCode
from portal.services import accounts, policy, temporary_access
from portal.services.client import Client
from portal.web.guard import SESSION_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import BIND, PAGE, complete_login, confirm, dialog_secret, location

CODE_RE = re.compile(r"data-temporary-code>([0-9 ]+)<")
ISSUE = "/admin/users/temporary-code"
CLIENT = Client(ip="198.51.100.9")


def staff(account: str, role: str):
    member = accounts.create(account, PASSWORD, name=role)
    return accounts.set_role(member.account, role, by=None, client=CLIENT, reason="test")


def console(new_browser, member, clock):
    secret = pyotp.random_base32()
    Factor.create(user=member, method="totp", secret=crypto.encrypt(secret))
    browser = new_browser()
    complete_login(browser, member.account, secret, clock)
    return browser


@pytest.fixture
def desk(new_browser, ctx, clock):
    return console(new_browser, staff("desk@mail.xamd.edu.cn", "helpdesk"), clock)


@pytest.fixture
def lost(totp_user, totp_secret):
    """``user`` whose 第三方 OTP was on the lost phone."""
    return totp_user


def issue(browser, account: str, **form):
    form = {"account": account, "reason": "工单 #2048", **form}
    return browser.post(ISSUE, form, htmx=True)


def issued_code(response) -> str:
    match = CODE_RE.search(text(response))
    assert match, text(response)
    return match.group(1)


def tap_login(browser, account: str, code: str):
    assert location(browser.login(account, PASSWORD)) == "/login/verify"
    return browser.post("/login/verify", {"method": "temporary", "code": code})


# --- the console side ---


@pytest.mark.parametrize("role", ["helpdesk", "admin"])
def test_helpdesk_and_admins_issue_a_code_shown_once(new_browser, ctx, clock, lost, role):
    browser = console(new_browser, staff(f"{role}-1@mail.xamd.edu.cn", role), clock)
    page = browser.get(f"/admin/users?account={lost.account}")
    assert 'id="temporary-code"' in text(page) and "签发临时访问码" in text(page)
    response = issue(browser, lost.account, minutes="240")
    assert response.status_code == 200 and "<html" not in text(response)  # the panel only
    code = issued_code(response)
    assert re.fullmatch(r"\d{4} \d{4}", code)
    assert "北京时间" in text(response) and "读给用户" in text(response)
    again = browser.get(f"/admin/users?account={lost.account}")
    assert code not in text(again) and "data-temporary-code" not in text(again)  # shown once
    assert "当前有一个有效的临时访问码" in text(again) and "作废" in text(again)
    event = AuditEvent.get(AuditEvent.event == "temporary_code_issued")
    assert f"by {role}-1@mail.xamd.edu.cn" in event.detail and event.user_id == lost.id


def test_without_javascript_the_whole_page_shows_the_code(desk, lost):
    response = desk.post(ISSUE, {"account": lost.account, "reason": "工单 #1"})
    assert response.status_code == 200 and "<html" in text(response)
    assert temporary_access.consume(lost, issued_code(response))


def test_auditors_and_users_cannot_issue(new_browser, ctx, clock, lost, browser):
    auditor = console(new_browser, staff("audit@mail.xamd.edu.cn", "auditor"), clock)
    assert auditor.post(ISSUE, {"account": lost.account, "reason": "x"}).status_code == 403
    assert "您的角色无权访问此页面" in text(issue(auditor, lost.account))  # htmx: the refusal in the flash
    other = accounts.create("carol@mail.xamd.edu.cn", PASSWORD)
    assert location(browser.login(other.account, PASSWORD)) == "/"
    assert browser.post(ISSUE, {"account": lost.account, "reason": "x"}).status_code == 403
    assert browser.post(f"{ISSUE}/revoke", {"account": lost.account}).status_code == 403
    assert not TemporaryAccessCode.select().exists()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"reason": "  "}, "请填写签发原因"),
        ({"minutes": "1500"}, "有效期只能是"),
        ({"minutes": "abc"}, "有效期只能是"),
        ({"account": "nobody@mail.xamd.edu.cn"}, "账号不存在"),
    ],
)
def test_bad_input_gets_a_message_and_no_code(desk, lost, form, message):
    response = desk.post(ISSUE, {"account": lost.account, "reason": "工单 #9", **form}, htmx=True)
    assert message in text(response) and "data-temporary-code" not in text(response)
    assert response.status_code < 500
    assert not TemporaryAccessCode.select().exists()


def test_staff_and_accounts_without_a_factor_get_no_code(desk, ctx, user):
    assert "未绑定二次验证" in text(desk.get(f"/admin/users?account={user.account}"))
    response = issue(desk, user.account)
    assert "未绑定二次验证" in text(response) and "data-temporary-code" not in text(response)
    response = issue(desk, "desk@mail.xamd.edu.cn")
    assert "不能使用临时访问码" in text(response) and not TemporaryAccessCode.select().exists()


def test_revoke_ends_the_active_code(desk, lost, new_browser):
    code = issued_code(issue(desk, lost.account))
    response = desk.post(f"{ISSUE}/revoke", {"account": lost.account}, htmx=True)
    assert "临时访问码已作废" in text(response) and "当前有一个有效" not in text(response)
    browser = new_browser()
    assert location(browser.login(lost.account, PASSWORD)) == "/login/verify"
    assert "使用临时访问码" not in text(browser.get("/login/verify"))
    assert "临时访问码错误" in text(browser.post("/login/verify", {"method": "temporary", "code": code}))
    assert "没有有效的临时访问码" in text(desk.post(f"{ISSUE}/revoke", {"account": lost.account}, htmx=True))


# --- the user's side ---


def test_the_second_step_offers_it_only_while_a_code_is_active(browser, lost, desk):
    assert location(browser.login(lost.account, PASSWORD)) == "/login/verify"
    assert "使用临时访问码" not in text(browser.get("/login/verify"))
    issue(desk, lost.account)
    page = browser.get("/login/verify")
    assert "使用临时访问码" in text(page) and 'name="method" value="totp"' in text(page)  # TOTP still first
    form = browser.get("/login/verify?method=temporary")
    assert 'name="method" value="temporary"' in text(form) and "8 位数字" in text(form)
    assert 'name="trust"' not in text(form)  # a temporary code never makes a trusted device


def test_a_temporary_code_leads_to_binding_only(app, browser, lost, desk):
    code = issued_code(issue(desk, lost.account))
    half = browser.cookie(SESSION_COOKIE)
    response = tap_login(browser, lost.account, code)
    assert location(response) == PAGE
    assert browser.cookie(SESSION_COOKIE) != half  # a new session id
    page = text(browser.get(PAGE))
    assert "您已使用临时访问码完成本次验证" in page and "/totp/change-by-temporary-code" in page
    assert "生成备用码" not in page and "/totp/unbind" not in page  # links that lead nowhere yet
    for path in ("/", "/settings/security/app-passwords", "/admin", "/settings/security/2fa/totp/unbind"):
        assert location(browser.get(path)) == PAGE, path  # invariant 1: the binding pages only
    assert "已绑定" in text(browser.get(BIND, htmx=True))  # 绑定 the lost one again: only by 修改
    assert AuditEvent.get(AuditEvent.event == "temporary_code_used").user_id == lost.id


def test_modifying_the_lost_factor_ends_in_a_full_session(browser, lost, desk, clock, totp_secret):
    code = issued_code(issue(desk, lost.account))
    tap_login(browser, lost.account, code)
    dialog = browser.post(f"{PAGE}/totp/change-by-temporary-code", htmx=True)
    secret = dialog_secret(dialog)
    done = confirm(browser, dialog, clock.next_code(secret))
    assert "绑定成功" in text(done) and "进入邮箱" in text(done)
    assert browser.get("/").status_code == 200
    assert crypto.decrypt(Factor.get(Factor.user == lost).secret) == secret != totp_secret
    assert AuditEvent.get(AuditEvent.event == "factor_changed").user_id == lost.id


def test_binding_another_method_ends_in_a_full_session(browser, user, desk, clock):
    """The lost phone held 微信; the user binds 第三方 OTP instead (the 微信 factor stays until 解绑)."""
    accounts.set_policy(user.account, methods="totp")
    Factor.create(user=user, method="wechat", external_id="wx0000000000000000:lost-openid")
    code = issued_code(issue(desk, user.account))
    assert location(tap_login(browser, user.account, code)) == PAGE
    dialog = browser.get(BIND, htmx=True)  # no step-up asked: the temporary code was the verification
    done = confirm(browser, dialog, clock.next_code(dialog_secret(dialog)))
    assert "绑定成功" in text(done) and "进入邮箱" in text(done)
    assert browser.get("/").status_code == 200


def test_change_by_temporary_code_needs_a_temporary_code_session(browser, lost, clock, totp_secret):
    complete_login(browser, lost.account, totp_secret, clock)
    response = browser.post(f"{PAGE}/totp/change-by-temporary-code", htmx=True)
    assert "仅在使用临时访问码登录后" in text(response)
    assert not AuditEvent.select().where(AuditEvent.event == "change_verify").exists()


def test_a_code_works_once(new_browser, lost, desk):
    code = issued_code(issue(desk, lost.account))
    assert location(tap_login(new_browser(), lost.account, code)) == PAGE
    again = tap_login(new_browser(), lost.account, code)
    assert again.status_code == 400 and "临时访问码错误、已使用或已过期" in text(again)


@pytest.mark.app_config(THROTTLE_ACCOUNT_FAILURES=3)
def test_wrong_codes_are_throttled_and_the_lock_holds_for_the_right_one(new_browser, lost, desk):
    code = issued_code(issue(desk, lost.account))
    wrong = "12345678" if code != "1234 5678" else "87654321"
    browser = new_browser()
    for _ in range(3):
        response = tap_login(browser, lost.account, wrong)
        assert "临时访问码错误" in text(response)
    locked = tap_login(browser, lost.account, code)
    assert locked.status_code == 429 and "尝试次数过多" in text(locked)
    assert temporary_access.active(lost) is not None  # not spent by the refused attempt


def test_staff_are_never_offered_one(browser, ctx, clock):
    member = staff("desk2@mail.xamd.edu.cn", "helpdesk")
    Factor.create(user=member, method="totp", secret=crypto.encrypt(pyotp.random_base32()))
    TemporaryAccessCode.create(user=member, code_hash=crypto.token_hash("planted"), expires_at=_later())
    assert location(browser.login(member.account, PASSWORD)) == "/login/verify"
    assert "使用临时访问码" not in text(browser.get("/login/verify"))
    assert location(tap_login(browser, member.account, "1234 5678")) != PAGE


def _later():
    from datetime import timedelta

    from portal.models import utcnow

    return utcnow() + timedelta(hours=1)


def test_forced_users_listed_by_policy_also_bind_after_a_code(browser, lost, desk, clock):
    policy.set_value("force_2fa", "listed")
    accounts.set_policy(lost.account, force=True)
    code = issued_code(issue(desk, lost.account))
    assert location(tap_login(browser, lost.account, code)) == PAGE
    assert location(browser.get("/")) == PAGE


def test_an_unknown_account_without_javascript_gets_the_error_page(desk):
    response = desk.post(ISSUE, {"account": "nobody@mail.xamd.edu.cn", "reason": "x"})
    assert response.status_code == 404 and "账号不存在" in text(response)


def test_a_temporary_code_session_cannot_put_binding_off(new_browser, ctx, clock, lost):
    """稍后绑定 is for accounts with nothing bound; a code login must bind (or 修改) to become full."""
    policy.set_value("force_2fa", "all")
    policy.set_value("force_2fa_snoozes", "3")
    code = issued_code(issue(console(new_browser, staff("desk2@mail.xamd.edu.cn", "helpdesk"), clock), lost.account))
    browser = new_browser()
    assert location(tap_login(browser, lost.account, code)) == PAGE
    assert "data-bind-later" not in text(browser.get(PAGE))
    refused = browser.post(f"{PAGE}/later", {})
    assert refused.status_code == 403
    assert location(browser.get("/")) == PAGE  # still only the binding pages
