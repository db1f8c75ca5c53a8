"""登录设备 (/settings/security/sessions): where the account is signed in; 退出 one or all the others."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal import crypto
from portal.models import (
    ApiToken,
    AuditEvent,
    Device,
    Factor,
    LoginSession,
    OAuthClient,
    OAuthToken,
    WeChatUser,
    utcnow,
)
from portal.services import accounts
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, is_fragment, location

PAGE = "/settings/security/sessions"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Version/17.1 Safari/604.1"


def session_ids(response) -> list[int]:
    return [int(n) for n in re.findall(rf'action="{PAGE}/(\d+)/end"', text(response))]


def live(user) -> list[LoginSession]:
    return list(LoginSession.select().where((LoginSession.user == user) & LoginSession.ended_at.is_null()))


def events(name: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.event == name))


@pytest.fixture
def two(new_browser, user, totp_secret, clock):
    """Browser A (Chrome on Windows) and B (Safari on an iPhone) of ``user``, both fully logged in."""
    a, b = new_browser(), new_browser()
    a.client.environ_base["HTTP_USER_AGENT"] = CHROME
    b.client.environ_base["HTTP_USER_AGENT"] = IPHONE
    for browser in (a, b):
        complete_login(browser, user.account, totp_secret, clock)
    return a, b


def session_of(user, agent: str) -> LoginSession:
    mine = (LoginSession.user == user) & LoginSession.ended_at.is_null()
    return LoginSession.get(mine & (LoginSession.user_agent == agent))


def test_lists_both_browsers_and_marks_the_current_one(two, user):
    a, b = two
    page = b.get(PAGE)
    body = text(page)
    assert page.status_code == 200 and "<html" in body and "登录设备" in body
    labels = ("浏览器", "系统", "IP", "登录时间", "最近活动", "127.0.0.1", "Chrome 120", "Windows", "Safari 17", "iOS")
    for label in labels:
        assert label in body, label
    assert sorted(session_ids(page)) == sorted(s.id for s in live(user))
    current = re.search(r'<tr data-session="(\d+)" data-current>(.*?)</tr>', body, re.S)
    assert int(current.group(1)) == session_of(user, IPHONE).id and "当前设备" in current.group(2)
    assert body.count("当前设备") == 1 and "退出其他所有设备" in body
    assert 'aria-current="page">登录设备' in body  # the settings navigation


def test_htmx_asks_for_the_list_only(two):
    fragment = two[0].get(PAGE, htmx=True, HX_Target="sessions")
    assert is_fragment(fragment) and text(fragment).lstrip().startswith('<div id="sessions"')
    content = two[0].get(PAGE, htmx=True)
    assert is_fragment(content) and "<h1>登录设备</h1>" in text(content)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_b_ends_a_and_as_next_request_goes_to_login(two, user, htmx):
    a, b = two
    target = session_of(user, CHROME)
    response = b.post(f"{PAGE}/{target.id}/end", htmx=htmx)
    if htmx:
        assert response.status_code == 200 and is_fragment(response) and "已退出该设备" in text(response)
        assert session_ids(response) == [session_of(user, IPHONE).id]
    else:  # a normal form POST: redirect back to the page
        assert response.status_code == 303 and location(response) == PAGE
        assert session_ids(b.get(PAGE)) == [session_of(user, IPHONE).id]
    ended = LoginSession.get_by_id(target.id)
    assert ended.ended_at is not None and ended.end_reason == "ended_by_user"
    assert location(a.get(PAGE)) == "/login"  # refused server-side on its very next request
    assert location(a.get("/")) == "/login"
    assert b.get(PAGE).status_code == 200  # B stays
    (event,) = events("session_ended_by_user")
    assert event.user_id == user.id and event.detail == f"id={target.id}" and event.user_agent == IPHONE


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_ending_the_current_session_is_a_logout(two, user, htmx):
    a, b = two
    mine = session_of(user, CHROME)
    response = a.post(f"{PAGE}/{mine.id}/end", htmx=htmx)
    assert location(response) == "/login"
    assert ("HX-Redirect" in response.headers) == htmx
    assert LoginSession.get_by_id(mine.id).ended_at is not None
    assert location(a.get(PAGE)) == "/login"
    assert b.get(PAGE).status_code == 200
    assert events("session_ended_by_user")[0].detail == f"id={mine.id} (this session)"


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_end_all_others_keeps_the_current_one(two, new_browser, user, totp_secret, clock, htmx):
    a, b = two
    c = new_browser()
    complete_login(c, user.account, totp_secret, clock)
    half = new_browser()
    half.login(user.account, PASSWORD)  # someone at the second step: ended too

    dialog = b.get(f"{PAGE}/end-others", htmx=htmx)
    assert "确定退出其他 2 台设备" in text(dialog) and is_fragment(dialog) == htmx
    response = b.post(f"{PAGE}/end-others", htmx=htmx)
    assert response.status_code == 200 and "已退出其他 3 台设备" in text(response)
    if htmx:
        assert response.headers["HX-Trigger"] == "sessionsChanged"
    assert [s.id for s in live(user)] == [session_of(user, IPHONE).id]
    assert session_ids(b.get(PAGE)) == [session_of(user, IPHONE).id]
    for other in (a, c):
        assert location(other.get(PAGE)) == "/login"
    assert location(half.get("/login/verify")) == "/login"
    (event,) = events("other_sessions_ended")
    assert event.user_id == user.id and event.detail == "count=3"


def test_alone_there_is_nothing_else_to_end(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    page = browser.get(PAGE)
    assert len(session_ids(page)) == 1 and "退出其他所有设备" not in text(page)
    assert "没有其他登录设备" in text(browser.get(f"{PAGE}/end-others", htmx=True))


def test_another_users_session_is_not_found_and_stays(two, new_browser, user):
    accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    bob = new_browser()
    bob.login("bob@mail.xamd.edu.cn", PASSWORD)  # no factor bound: a full session at once
    alices = session_of(user, CHROME)
    page = bob.get(PAGE)
    assert "Chrome 120" not in text(page) and alices.id not in session_ids(page)  # bob sees none of alice's
    response = bob.post(f"{PAGE}/{alices.id}/end")
    assert response.status_code == 404 and "<html" in text(response)
    fragment = bob.post(f"{PAGE}/{alices.id}/end", htmx=True)  # htmx: the message in #flash
    assert fragment.headers["HX-Retarget"] == "#flash" and "该登录设备不存在或已退出" in text(fragment)
    assert LoginSession.get_by_id(alices.id).ended_at is None
    assert two[0].get(PAGE).status_code == 200
    assert not events("session_ended_by_user")


def test_ended_unknown_and_bad_ids_are_404(two, user):
    a, b = two
    target = session_of(user, CHROME)
    b.post(f"{PAGE}/{target.id}/end")
    for path in (
        f"{target.id}/end",
        "999999/end",
        "2147483647/end",
        "2147483648/end",
        "99999999999999999999/end",
        "abc/end",
        "-1/end",
        "1.5/end",
        "%00/end",
    ):
        response = b.post(f"{PAGE}/{path}")
        assert response.status_code == 404, path
        assert "<html" in text(response)
    assert b.get(PAGE).status_code == 200


def test_csrf_missing_is_refused_and_nothing_ends(two, user):
    a, b = two
    target = session_of(user, CHROME)
    for url in (f"{PAGE}/{target.id}/end", f"{PAGE}/end-others"):
        response = b.post(url, csrf=False)
        assert response.status_code == 400 and "页面已过期或请求来源无效" in text(response)
        response = b.post(url, htmx=True, csrf=False)
        assert response.headers["HX-Retarget"] == "#flash"
    assert len(live(user)) == 2 and a.get(PAGE).status_code == 200


def test_a_half_logged_in_session_cannot_reach_the_page(browser, user, totp_secret, two):
    browser.login(user.account, PASSWORD)  # password passed, second step pending
    assert location(browser.get(PAGE)) == "/login/verify"
    target = session_of(user, CHROME)
    assert location(browser.post(f"{PAGE}/{target.id}/end")) == "/login/verify"
    assert location(browser.post(f"{PAGE}/end-others")) == "/login/verify"
    assert len(live(user)) == 3


def test_anonymous_goes_to_login(browser):
    assert location(browser.get(PAGE)) == "/login"


# --- the other kinds of login ---


@pytest.fixture
def webmail(ctx):
    return OAuthClient.create(client_id="webmail", name="网页邮箱", redirect_uris="https://mail.example/cb")


def issue_sso(session: LoginSession, client: OAuthClient) -> OAuthToken:
    now = utcnow()
    return OAuthToken.create(
        access_hash=crypto.token_hash(crypto.new_token()),
        family=crypto.new_token()[:32],
        client=client,
        user=session.user,
        session=session,
        auth_time=now,
        expires_at=now + timedelta(minutes=10),
    )


def test_sso_grants_are_listed_and_end_with_their_session(two, user, webmail):
    a, b = two
    token = issue_sso(session_of(user, CHROME), webmail)
    page = text(b.get(PAGE))
    assert "单点登录应用" in page and "网页邮箱" in page and "通过 Chrome 120 · Windows" in page
    b.post(f"{PAGE}/{session_of(user, CHROME).id}/end", htmx=True)
    assert OAuthToken.get_by_id(token.id).revoked_at is not None
    assert "网页邮箱" not in text(b.get(PAGE)) and "暂无单点登录应用" in text(b.get(PAGE))


def test_end_others_revokes_their_sso_tokens_only(two, user, webmail):
    a, b = two
    theirs, mine = issue_sso(session_of(user, CHROME), webmail), issue_sso(session_of(user, IPHONE), webmail)
    b.post(f"{PAGE}/end-others", htmx=True)
    assert OAuthToken.get_by_id(theirs.id).revoked_at is not None
    assert OAuthToken.get_by_id(mine.id).revoked_at is None
    assert "通过 Safari 17 · iOS" in text(b.get(PAGE))


def test_app_devices_and_the_mini_program_link_to_twofa(browser, user, totp_secret, clock):
    Device.create(device_id="dev-1", user=user, public_key="k" * 44, name="Alice 的 iPhone", platform="iOS 17")
    Factor.create(user=user, method="app", external_id="dev-1")
    Device.create(device_id="dev-old", user=user, public_key="j" * 44, name="旧手机")  # no factor names it
    holder = WeChatUser.create(appid="wxapp", openid="o-alice")
    Factor.create(user=user, method="wechat", external_id=holder.binding_id)
    ApiToken.create(token_hash=crypto.token_hash("t"), wechat_user=holder, expires_at=utcnow() + timedelta(days=1))
    complete_login(browser, user.account, totp_secret, clock)
    body = text(browser.get(PAGE))
    assert "邮箱安全 App" in body and "Alice 的 iPhone" in body and "iOS 17" in body and "旧手机" not in body
    assert "微信小程序" in body and "邮箱安全助手" in body
    assert body.count('href="/settings/security/2fa">在二次验证设置中解绑') == 2


def test_mini_program_without_a_live_token_is_not_listed(browser, user, totp_secret, clock):
    holder = WeChatUser.create(appid="wxapp", openid="o-alice")
    Factor.create(user=user, method="wechat", external_id=holder.binding_id)
    ApiToken.create(token_hash=crypto.token_hash("t"), wechat_user=holder, expires_at=utcnow() - timedelta(seconds=1))
    complete_login(browser, user.account, totp_secret, clock)
    assert "暂无小程序登录" in text(browser.get(PAGE))
