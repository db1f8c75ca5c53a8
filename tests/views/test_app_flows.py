"""邮箱安全 App in the browser (manual 二(一), 三(一)): 绑定 by scanning, the second step by push with
number matching, by scanning the login QR or by the App's code, and 解绑 / 修改 verified by the App.

The browser is the Flask test client; the App (``AppDevice``) signs its calls to /api/app/v1 of the
same app. QR URLs are <PUBLIC_URL>/app/enroll/<t> (bind) and <PUBLIC_URL>/app/t/<t> (approve).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.models import AuditEvent, Factor, Ticket, TrustedDevice, utcnow
from portal.services import accounts, approvals, policy, sessions, throttle
from portal.web.guard import SESSION_COOKIE, TRUST_COOKIE
from tests.api.app_support import AppDevice, app_factor, enrolled, error_code, ticket_by_token, token_in
from tests.conftest import PASSWORD
from tests.helpers import attr, text
from tests.views.support import PAGE, location, rows
from tests.views.wechat_support import poll_url, qr_url, query, redirect_target, status_tag

PUBLIC_URL = "http://127.0.0.1:8000"  # tests.conftest.make_config
VERIFY = "/login/verify"
APP_BIND = f"{PAGE}/app/bind"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.71 Safari/537.36"
)
HTMX = pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])


@pytest.fixture
def phone(app) -> AppDevice:
    """The 邮箱安全 App on the user's phone (not enrolled yet)."""
    return AppDevice(app.test_client())


@pytest.fixture
def logged_in(browser, user):
    """alice, no factor yet, fully logged in."""
    assert location(browser.login(user.account, PASSWORD)) == "/"
    return browser


@pytest.fixture
def bound(app, user) -> AppDevice:
    """alice has bound the App (enrolled from a bind QR of another browser)."""
    return enrolled(app.test_client(), user, name="EML-AL00", platform="Android")


def number_of(response) -> int:
    return int(attr(response, "data-match-number"))


def challenge_for(device: AppDevice, page) -> dict:
    """The App's pending challenge that the page's push created."""
    number = number_of(page)
    listed = [c for c in device.pending() if number in c["choices"]]
    assert len(listed) == 1, listed
    return listed[0]


def wrong_number(challenge: dict, right: int) -> int:
    return next(n for n in challenge["choices"] if n != right)


def password_step(browser, user) -> None:
    assert location(browser.login(user.account, PASSWORD)) == VERIFY


def second_step(browser, user, query_string: str = ""):
    """Password, then the second-step page (by default: a push to the App)."""
    password_step(browser, user)
    page = browser.get(VERIFY + query_string, User_Agent=CHROME)
    assert page.status_code == 200, text(page)
    return page


def login_by_code(browser, user, device: AppDevice, clock) -> None:
    password_step(browser, user)
    clock.step += 1
    response = browser.post(VERIFY, {"method": "app", "code": device.code()})
    assert location(response) == "/", text(response)


def bind_app(browser, device: AppDevice, name: str = "EML-AL00", platform: str = "Android", htmx: bool = True):
    """绑定 邮箱安全 App in a full session: the dialog, the App enrolls, the final poll."""
    dialog = browser.get(APP_BIND, htmx=htmx)
    assert device.enroll(qr_url(dialog), name, platform).status_code == 200
    return browser.get(poll_url(dialog), htmx=htmx)


def assert_logged_in(response, htmx: bool) -> None:
    if htmx:
        assert response.status_code == 200 and response.headers["HX-Redirect"] == "/", response.headers
    else:
        assert response.status_code == 302 and location(response) == "/"


def is_half_logged_in(browser) -> bool:
    return location(browser.get("/")) == VERIFY


def expire(ticket_id: int) -> None:
    Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).where(Ticket.id == ticket_id).execute()


def ticket_of_poll(response) -> Ticket:
    return Ticket.get_by_id(int(poll_url(response).rsplit("/", 1)[1]))


# --- 绑定 (manual 二(一)1) -----------------------------------------------------------------------


@HTMX
def test_bind_dialog_shows_the_enroll_qr(logged_in, user, htmx):
    dialog = logged_in.get(APP_BIND, htmx=htmx)

    body = text(dialog)
    assert dialog.status_code == 200
    assert "请打开【邮箱安全 App】扫码绑定" in body and "用手机相机扫描此二维码,在浏览器中打开邮箱安全 App" in body
    url = qr_url(dialog)
    assert url.startswith(f"{PUBLIC_URL}/app/enroll/")
    ticket = ticket_by_token(token_in(url))
    assert (ticket.method, ticket.purpose, ticket.channel, ticket.user_id) == ("app", "bind", "qr", user.id)
    assert timedelta(minutes=4) < ticket.expires_at - utcnow() <= timedelta(minutes=5)  # bind ≤ 5 min
    assert f'hx-get="{PAGE}/scan/{ticket.id}"' in status_tag(dialog)
    waiting = logged_in.get(poll_url(dialog), htmx=True)
    assert 'data-state="pending"' in text(waiting) and "绑定成功" not in text(waiting)
    assert app_factor(user) is None


@HTMX
def test_bind_by_scanning_with_the_app(logged_in, user, phone, htmx):
    done = bind_app(logged_in, phone, "EML-AL00", "Android", htmx=htmx)

    assert "绑定成功" in text(done)
    assert done.headers.get("HX-Trigger") == "factorsChanged"
    factor = app_factor(user)
    assert (factor.label, factor.external_id) == ("EML-AL00 (Android)", phone.device_id)
    row = rows(logged_in.get(PAGE))["app"]  # figure 2-1-5
    assert "已绑定" in row and "EML-AL00 (Android)" in row
    assert "修改" in row and "解绑" in row and ">绑定<" not in row
    assert AuditEvent.get(AuditEvent.event == "factor_bound").method == "app"


def test_the_methods_table_refresh_shows_the_device(logged_in, phone):
    bind_app(logged_in, phone, "iPhone 15", "iOS")
    fragment = logged_in.get(PAGE, htmx=True, HX_Target="methods")
    assert "<html" not in text(fragment)
    assert "iPhone 15 (iOS)" in rows(fragment)["app"]


def test_the_app_cannot_be_bound_twice(logged_in, user, phone):
    bind_app(logged_in, phone)
    again = logged_in.get(APP_BIND, htmx=True)
    assert "已绑定;如需更换请使用“修改”" in text(again)
    assert "data-qr-url" not in text(again)


def test_an_expired_bind_qr(logged_in, user, phone):
    dialog = logged_in.get(APP_BIND, htmx=True)
    expire(ticket_by_token(token_in(qr_url(dialog))).id)
    response = phone.enroll(qr_url(dialog))
    assert (response.status_code, error_code(response)) == (410, "ticket_expired")
    assert "二维码已过期" in text(logged_in.get(poll_url(dialog), htmx=True))
    assert app_factor(user) is None


def test_forced_binding_with_the_app_enters_the_mailbox(browser, user, phone):
    policy.set_value("force_2fa", "all")
    assert location(browser.login(user.account, PASSWORD)) == PAGE
    binding = browser.cookie(SESSION_COOKIE)
    assert location(browser.get("/")) == PAGE  # nothing else is reachable yet

    done = bind_app(browser, phone)

    assert "绑定成功" in text(done) and "进入邮箱" in text(done)
    assert browser.cookie(SESSION_COOKIE) not in (None, binding)
    assert sessions.resolve(browser.cookie(SESSION_COOKIE)).stage == sessions.FULL
    assert browser.get("/").status_code == 200


# --- the second step: 打开 App 确认授权 (manual 二(一)3) ------------------------------------------


def test_the_second_step_defaults_to_a_push(browser, user, bound):
    page = second_step(browser, user)

    body = text(page)
    assert "打开【邮箱安全 App】确认授权" in body
    assert "data-qr-url" not in body
    number = number_of(page)
    assert re.search(r"没有收到授权信息\?请选择\s*<a [^>]*mode=qr[^>]*>扫二维码</a> 或\s*<a [^>]*mode=code", body)
    challenge = challenge_for(bound, page)
    assert (challenge["purpose"], challenge["account"]) == ("login", user.account)
    assert number in challenge["choices"] and len(set(challenge["choices"])) == 3
    request = challenge["request"]
    assert (request["ip"], request["browser"], request["os"]) == ("127.0.0.1", "Chrome 120", "Windows")
    assert request["time"].endswith("Z")
    ticket = Ticket.get_by_id(challenge["id"])
    assert (ticket.channel, ticket.match_number, ticket.state) == ("push", number, "pending")
    assert f'hx-get="{VERIFY}/scan/{ticket.id}"' in status_tag(page)


@HTMX
def test_approve_with_the_right_number_logs_in(browser, user, bound, htmx):
    page = second_step(browser, user)
    half = browser.cookie(SESSION_COOKIE)
    challenge = challenge_for(bound, page)
    waiting = browser.get(poll_url(page), htmx=True)
    assert "HX-Redirect" not in waiting.headers and is_half_logged_in(browser)

    assert bound.approve(challenge["id"], number_of(page)).status_code == 200
    done = browser.get(poll_url(page), htmx=htmx)

    assert_logged_in(done, htmx)
    full = browser.cookie(SESSION_COOKIE)
    assert full not in (None, half)  # the session id rotates (invariant 2)
    assert sessions.resolve(half) is None and sessions.resolve(full).stage == sessions.FULL
    assert browser.get("/").status_code == 200
    assert browser.cookie(TRUST_COOKIE) is None
    assert AuditEvent.get(AuditEvent.event == "login_complete").method == "app"
    assert Ticket.get_by_id(ticket_of_poll(page).id).state == "consumed"  # the approval is used once


def test_a_wrong_number_cancels_and_tells_the_browser(browser, user, bound):
    page = second_step(browser, user)
    challenge = challenge_for(bound, page)

    response = bound.approve(challenge["id"], wrong_number(challenge, number_of(page)))
    assert (response.status_code, error_code(response)) == (409, "number_mismatch")
    assert Ticket.get_by_id(challenge["id"]).deny_reason == "number_mismatch"

    told = browser.get(poll_url(page), htmx=True)
    target = redirect_target(told)
    assert query(target) == {"method": ["app"], "notice": ["denied"], "reason": ["number_mismatch"]}
    notice = browser.get(target, User_Agent=CHROME)
    assert "App 中选择的数字与网页显示的不一致" in text(notice)
    assert is_half_logged_in(browser)


def test_not_me_is_shown_and_audited(browser, user, bound):
    page = second_step(browser, user)
    challenge = challenge_for(bound, page)

    assert bound.deny(challenge["id"], "not_me").status_code == 200

    target = redirect_target(browser.get(poll_url(page), htmx=True))
    assert query(target)["reason"] == ["not_me"]
    pushes = Ticket.select().where(Ticket.channel == "push").count()
    notice = browser.get(target)
    # This browser may be the one the owner refused: it is told "refused", not to change the password.
    assert "该请求已在手机上被拒绝" in text(notice)
    assert "不是本人操作" not in text(notice) and "修改密码" not in text(notice)
    # No new push after 不是本人操作, not even on the App's page: only the user's click sends one.
    assert 'name="code"' in text(notice) and "data-match-number" not in text(notice)
    again = browser.get(VERIFY + "?method=app", User_Agent=CHROME)
    assert "data-match-number" not in text(again) and "发送授权请求" in text(again)
    assert Ticket.select().where(Ticket.channel == "push").count() == pushes
    Ticket.update(created_at=utcnow() - approvals.PUSH_INTERVAL).execute()  # the pause between pushes is over
    resent = browser.post(f"{VERIFY}/push")
    assert location(resent) == VERIFY
    assert number_of(browser.get(VERIFY + "?method=app"))
    assert Ticket.select().where(Ticket.channel == "push").count() == pushes + 1
    event = AuditEvent.get(AuditEvent.event == "app_login_denied")
    assert (event.outcome, event.account, event.method) == ("not_me", user.account, "app")
    assert is_half_logged_in(browser)


def test_the_owner_is_told_of_not_me_on_the_welcome_page(browser, new_browser, user, bound, clock):
    """不是本人操作 is news for the account's owner: 欢迎页 says so at the owner's next login."""
    page = second_step(browser, user)
    assert bound.deny(challenge_for(bound, page)["id"], "not_me").status_code == 200

    owner = new_browser()
    login_by_code(owner, user, bound, clock)

    welcome = text(owner.get("/"))
    assert "最近 7 天内有 1 次登录或操作请求被您标记为“不是本人操作”" in welcome and "请尽快修改密码" in welcome


def test_an_expired_push_is_not_listed_and_the_page_says_so(browser, user, bound):
    page = second_step(browser, user)
    challenge = challenge_for(bound, page)
    expire(challenge["id"])

    assert bound.pending() == []
    response = bound.approve(challenge["id"], number_of(page))
    assert (response.status_code, error_code(response)) == (410, "challenge_expired")
    target = redirect_target(browser.get(poll_url(page), htmx=True))
    assert query(target)["notice"] == ["push_expired"]
    again = browser.get(target, User_Agent=CHROME)
    assert "授权请求已过期" in text(again) and "二维码已过期" not in text(again)
    assert "data-match-number" not in text(again)  # nothing sent by itself: the user asks for a new one
    assert "发送授权请求" in text(again) and 'action="/login/verify/push"' in text(again)
    assert is_half_logged_in(browser)


def test_another_browsers_push_cannot_be_polled(browser, new_browser, user, bound):
    page = second_step(browser, user)
    other = new_browser()
    second_step(other, user)
    assert other.get(poll_url(page)).status_code == 404
    fragment = other.get(poll_url(page), htmx=True)
    assert fragment.headers.get("HX-Retarget") == "#flash" and "二维码不存在" in text(fragment)
    assert "HX-Redirect" not in fragment.headers


def test_more_than_three_open_pushes_fall_back_to_qr_and_code(new_browser, user, bound, clock):
    for _ in range(3):
        second_step(new_browser(), user)
    assert len(bound.pending()) == 3

    fourth = new_browser()
    page = second_step(fourth, user)

    body = text(page)
    assert "待处理的授权请求过多" in body
    assert "data-match-number" not in body
    assert 'name="code"' in body and 'name="method" value="app"' in body  # the code still works
    assert len(bound.pending()) == 3
    qr_page = fourth.get(f"{VERIFY}?method=app&mode=qr")  # ... and so does the QR
    assert qr_url(qr_page).startswith(f"{PUBLIC_URL}/app/t/")
    clock.step += 1
    assert location(fourth.post(VERIFY, {"method": "app", "code": bound.code()})) == "/"


def test_pushes_are_capped_per_window(browser, user, bound, monkeypatch):
    monkeypatch.setattr(approvals, "PUSH_INTERVAL", timedelta(0))
    monkeypatch.setattr(approvals, "PUSHES_PER_WINDOW", (3, 30))
    password_step(browser, user)
    number_of(browser.get(VERIFY))  # the page visit sends the first push
    for _ in range(2):
        assert location(browser.post(f"{VERIFY}/push")) == VERIFY  # each click one more (the old one goes)

    page = browser.post(f"{VERIFY}/push")

    assert "发送授权请求过于频繁" in text(page) and "尝试次数过多" not in text(page)
    assert "data-match-number" not in text(page) and 'name="code"' in text(page)
    assert qr_url(browser.get(f"{VERIFY}?method=app&mode=qr")).startswith(f"{PUBLIC_URL}/app/t/")


# --- 扫二维码 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("trust", [False, True], ids=["once", "trust"])
def test_scan_the_login_qr(browser, user, bound, trust):
    page = second_step(browser, user, "?method=app&mode=qr")

    body = text(page)
    assert "打开【邮箱安全 App】扫一扫" in body and "data-match-number" not in body
    assert re.search(r"扫描二维码失效\?请选择\s*<a [^>]*>App 授权</a> 或\s*<a [^>]*mode=code", body)
    url = qr_url(page)
    assert url.startswith(f"{PUBLIC_URL}/app/t/")
    ticket = ticket_by_token(token_in(url))
    assert (ticket.channel, ticket.purpose) == ("qr", "login")
    assert bound.pending() == []  # a QR is not pushed

    assert bound.scan(url, trust_device=trust).status_code == 200
    assert_logged_in(browser.get(poll_url(page), htmx=True), True)

    assert browser.get("/").status_code == 200
    assert bool(browser.cookie(TRUST_COOKIE)) is trust
    assert TrustedDevice.select().count() == int(trust)


def test_another_accounts_app_cannot_approve_the_login_qr(app, browser, user, bound):
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    bobs = enrolled(app.test_client(), bob, name="iPhone", platform="iOS")
    page = second_step(browser, user, "?method=app&mode=qr")
    response = bobs.scan(qr_url(page))
    assert (response.status_code, error_code(response)) == (403, "not_bound_to_you")
    assert "HX-Redirect" not in browser.get(poll_url(page), htmx=True).headers
    assert is_half_logged_in(browser)


# --- the App's 6-digit code ----------------------------------------------------------------------


def test_the_apps_code_logs_in_once(browser, new_browser, user, bound, clock):
    page = second_step(browser, user, "?method=app&mode=code")
    body = text(page)
    assert "打开【邮箱安全 App】,点击“+”选择“二次验证”" in body and "data-match-number" not in body
    half = browser.cookie(SESSION_COOKIE)
    clock.step += 1
    code = bound.code()

    assert location(browser.post(VERIFY, {"method": "app", "code": code})) == "/"
    assert browser.cookie(SESSION_COOKIE) != half

    other = new_browser()
    password_step(other, user)
    replay = other.post(VERIFY, {"method": "app", "code": code})
    assert replay.status_code == 400 and "该验证码已使用" in text(replay)
    assert is_half_logged_in(other)


def test_a_wrong_code_is_refused(browser, user, bound, clock):
    password_step(browser, user)
    near = {bound.code(clock.step + d) for d in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in near)
    response = browser.post(VERIFY, {"method": "app", "code": wrong})
    assert response.status_code == 400 and "验证码错误" in text(response)
    assert is_half_logged_in(browser)


# --- 解绑 and 修改 verified by the App (manual 三(一)) -------------------------------------------


@pytest.fixture
def app_session(browser, user, bound, clock):
    """alice (App bound) fully logged in with the App's code."""
    login_by_code(browser, user, bound, clock)
    return browser


def test_unbind_by_push(app_session, user, bound):
    dialog = app_session.get(f"{PAGE}/app/unbind", htmx=True)

    body = text(dialog)
    assert "解绑邮箱安全 App前,打开【邮箱安全 App】确认授权" in body
    challenge = challenge_for(bound, dialog)
    assert challenge["purpose"] == "unbind"
    assert bound.approve(challenge["id"], number_of(dialog)).status_code == 200
    done = app_session.get(poll_url(dialog), htmx=True)

    assert "解绑成功" in text(done) and done.headers.get("HX-Trigger") == "factorsChanged"
    assert app_factor(user) is None
    response = bound.call("GET", "/challenges")
    assert (response.status_code, error_code(response)) == (401, "device_unknown")
    row = rows(app_session.get(PAGE))["app"]
    assert "未绑定" in row and ">绑定</a>" in row


def test_unbind_by_scanning_the_qr(app_session, user, bound):
    dialog = app_session.get(f"{PAGE}/app/unbind?mode=qr", htmx=True)
    body = text(dialog)
    assert "data-match-number" not in body and "扫码确认授权" in body
    url = qr_url(dialog)
    assert url.startswith(f"{PUBLIC_URL}/app/t/")

    assert bound.scan(url).status_code == 200

    assert "解绑成功" in text(app_session.get(poll_url(dialog), htmx=True))
    assert app_factor(user) is None


def test_unbind_by_code(app_session, user, bound, clock):
    dialog = app_session.get(f"{PAGE}/app/unbind?mode=code", htmx=True)
    assert "打开【邮箱安全 App】输入验证码" in text(dialog)
    # 图 3-2-4: "看不到验证码? 请选择 App 授权 或 扫二维码": both ways back to the phone are offered.
    assert re.search(r"看不到验证码\?请选择 <a [^>]*>App 授权</a> 或 <a [^>]*mode=qr[^>]*>扫二维码</a>", text(dialog))
    assert "data-match-number" not in text(dialog) and "data-qr-url" not in text(dialog)
    clock.step += 1

    done = app_session.post(f"{PAGE}/app/unbind", {"via": "app", "code": bound.code()}, htmx=True)

    assert "解绑成功" in text(done)
    assert app_factor(user) is None


def test_unbind_denied_in_the_app_keeps_the_app(app_session, user, bound):
    dialog = app_session.get(f"{PAGE}/app/unbind", htmx=True)
    challenge = challenge_for(bound, dialog)
    assert bound.deny(challenge["id"], "not_me").status_code == 200

    told = app_session.get(poll_url(dialog), htmx=True)

    assert "该请求已在手机上被拒绝" in text(told)
    assert app_factor(user).external_id == bound.device_id
    assert bound.call("GET", "/challenges").status_code == 200


def test_a_forced_users_only_app_cannot_be_unbound(app_session, user, bound):
    policy.set_value("force_2fa", "all")
    dialog = app_session.get(f"{PAGE}/app/unbind", htmx=True)
    assert "不能解绑唯一的验证方式" in text(dialog)
    assert "data-match-number" not in text(dialog)
    assert bound.pending() == []
    response = bound.remove()
    assert (response.status_code, error_code(response)) == (403, "not_allowed")
    assert app_factor(user) is not None


def test_change_by_push_then_the_new_app_replaces_the_old(app, app_session, user, bound):
    dialog = app_session.get(f"{PAGE}/app/change", htmx=True)
    assert "修改邮箱安全 App前,打开【邮箱安全 App】确认授权" in text(dialog)
    challenge = challenge_for(bound, dialog)
    assert challenge["purpose"] == "rebind"
    assert bound.approve(challenge["id"], number_of(dialog)).status_code == 200

    bind_dialog = app_session.get(poll_url(dialog), htmx=True)

    assert "修改邮箱安全 App:绑定新的设备" in text(bind_dialog)
    assert "原设备仍然有效" in text(bind_dialog)
    url = qr_url(bind_dialog)
    assert url.startswith(f"{PUBLIC_URL}/app/enroll/")
    # Until the new App enrolls, the old one is the factor and keeps working.
    assert bound.call("GET", "/challenges").status_code == 200
    assert app_factor(user).external_id == bound.device_id

    new_phone = AppDevice(app.test_client())
    assert new_phone.enroll(url, "Mate 60", "HarmonyOS").status_code == 200
    done = app_session.get(poll_url(bind_dialog), htmx=True)

    assert "绑定成功" in text(done)
    factor = app_factor(user)
    assert (factor.external_id, factor.label) == (new_phone.device_id, "Mate 60 (HarmonyOS)")
    response = bound.call("GET", "/challenges")
    assert (response.status_code, error_code(response)) == (401, "device_unknown")
    assert new_phone.call("GET", "/challenges").status_code == 200
    assert "Mate 60 (HarmonyOS)" in rows(app_session.get(PAGE))["app"]
    assert Factor.select().where(Factor.user == user).count() == 1


def test_an_abandoned_change_leaves_the_old_app(app_session, new_browser, user, bound, clock):
    dialog = app_session.get(f"{PAGE}/app/change?mode=qr", htmx=True)
    assert bound.scan(qr_url(dialog)).status_code == 200
    bind_dialog = app_session.get(poll_url(dialog), htmx=True)
    assert "修改邮箱安全 App:绑定新的设备" in text(bind_dialog)

    # Nobody enrolls: the old App still logs in, by code and by push.
    other = new_browser()
    login_by_code(other, user, bound, clock)
    assert app_factor(user).external_id == bound.device_id
    third = new_browser()
    page = second_step(third, user)
    assert bound.approve(challenge_for(bound, page)["id"], number_of(page)).status_code == 200
    assert location(third.get(poll_url(page))) == "/"


def test_change_by_code_goes_straight_to_the_new_qr(app_session, user, bound, clock):
    dialog = app_session.get(f"{PAGE}/app/change?mode=code", htmx=True)
    assert "修改邮箱安全 App前,打开【邮箱安全 App】输入验证码" in text(dialog)
    clock.step += 1
    bind_dialog = app_session.post(f"{PAGE}/app/change", {"via": "app", "code": bound.code()}, htmx=True)
    assert "修改邮箱安全 App:绑定新的设备" in text(bind_dialog)
    assert qr_url(bind_dialog).startswith(f"{PUBLIC_URL}/app/enroll/")
    assert ticket_by_token(token_in(qr_url(bind_dialog))).replaces is True


# --- App QR URLs open the App itself (DESIGN §5 "邮箱安全 App as a web app") -------------------------


def is_app_shell(page) -> bool:
    body = page.get_data(as_text=True)
    return page.status_code == 200 and 'rel="manifest" href="/app/manifest.webmanifest"' in body and "确定绑定" in body


@pytest.mark.parametrize("path", ["/app", "/app/t/some-ticket", "/app/enroll/some-ticket"])
def test_app_qr_urls_open_the_app(new_browser, path):
    page = new_browser().get(path)  # no session: the App is public and signs its own requests
    assert is_app_shell(page)
    assert "请使用微信扫一扫" not in text(page)


def test_opening_a_real_bind_qr_url_changes_nothing_until_the_app_enrolls(logged_in, new_browser, user):
    url = qr_url(logged_in.get(APP_BIND, htmx=True))
    for browser in (new_browser(), logged_in):
        assert is_app_shell(browser.get(url.removeprefix(PUBLIC_URL)))
    assert ticket_by_token(token_in(url)).state == "pending"
    assert app_factor(user) is None


def test_the_app_is_public_for_a_half_logged_in_browser(browser, user, bound):
    password_step(browser, user)
    assert is_app_shell(browser.get("/app/t/whatever"))


# --- pushes never punish the user (item 10 of #9) ------------------------------------------------


def test_reloading_the_second_step_reuses_one_push_and_never_locks(browser, user, bound, clock):
    numbers = set()
    password_step(browser, user)
    for _ in range(12):
        numbers.add(number_of(browser.get(VERIFY, User_Agent=CHROME)))

    assert len(numbers) == 1 and len(bound.pending()) == 1
    assert Ticket.select().where(Ticket.channel == "push").count() == 1
    assert throttle.failures("otp", user.account) == 0 and throttle.failures("push", user.account) == 1
    clock.step += 1
    assert location(browser.post(VERIFY, {"method": "app", "code": bound.code()})) == "/"


def test_opening_the_unbind_dialog_again_and_again_sends_one_push(app_session, user, bound):
    for _ in range(12):
        dialog = app_session.get(f"{PAGE}/app/unbind", htmx=True)
        assert "尝试次数过多" not in text(dialog) and number_of(dialog)
    assert len(bound.pending()) == 1
    assert throttle.failures("otp", user.account) == 0


def test_an_expired_push_is_no_failure(browser, user, bound, clock):
    password_step(browser, user)
    for _ in range(12):  # each push expires unanswered; the user asks for a new one each time
        Ticket.update(expires_at=utcnow() - timedelta(seconds=1), created_at=utcnow() - timedelta(minutes=3)).execute()
        browser.post(f"{VERIFY}/push")
    assert throttle.failures("otp", user.account) == 0  # unanswered pushes are not failed attempts
    page = browser.get(VERIFY, User_Agent=CHROME)
    assert "尝试次数过多" not in text(page)
    clock.step += 1
    assert location(browser.post(VERIFY, {"method": "app", "code": bound.code()})) == "/"
