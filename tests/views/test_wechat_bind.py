"""绑定 微信 (manual 二(二)1): the QR dialog, polling until the mini-program confirms, and its edges.

The browser is the Flask test client (htmx fragments and plain no-JS requests); the phone is the
mini-program API driven through the WeChat stub over HTTP.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.models import Ticket, utcnow
from portal.services import accounts, policy, sessions
from portal.web.guard import SESSION_COOKIE
from tests.conftest import PASSWORD
from tests.helpers import openid_of, text
from tests.views.support import PAGE, dialog_tag, is_fragment, location, rows
from tests.views.wechat_support import *  # noqa: F403 -- fixtures: app_config, phone, wechat_stub
from tests.views.wechat_support import (
    PUBLIC_URL,
    WX_BIND,
    bind_wechat,
    expire,
    poll_url,
    qr_token,
    qr_url,
    status_tag,
    ticket_of,
    wechat_factor,
)

HTMX = pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
DENIED = "该请求已在手机上被拒绝"  # the browser is not told to change the password: it may be the intruder


@pytest.fixture
def logged_in(browser, user):
    """A full session of a user with no second factor (微信 is self-service)."""
    assert location(browser.login(user.account, PASSWORD)) == "/"
    return browser


@pytest.fixture
def bob(ctx):
    return accounts.create("bob@mail.xamd.edu.cn", PASSWORD, name="Bob")


def open_bind_dialog(browser, htmx: bool):
    dialog = browser.get(WX_BIND, htmx=htmx)
    assert dialog.status_code == 200
    return dialog


def test_wechat_row_offers_bind(logged_in):
    row = rows(logged_in.get(PAGE))["wechat"]
    assert "微信" in row and "未绑定" in row and "已绑定" not in row
    assert f'href="{WX_BIND}"' in row and f'hx-get="{WX_BIND}"' in row and "绑定</a>" in row
    assert "修改</a>" not in row and "解绑</a>" not in row


@HTMX
def test_bind_dialog_shows_a_qr_that_polls(logged_in, user, htmx):
    dialog = open_bind_dialog(logged_in, htmx)
    body = text(dialog)

    assert is_fragment(dialog) == htmx
    assert (" open" in dialog_tag(dialog)) != htmx  # without JavaScript the dialog is shown open
    assert "请打开【微信】扫码绑定" in body and "修改微信" not in body
    assert re.search(r'<div class="qr" data-qr-url="[^"]+"><svg', body)
    token = qr_token(dialog)
    assert qr_url(dialog) == f"{PUBLIC_URL}/wx/t/{token}" and len(token) >= 32
    ticket = ticket_of(token)
    assert (ticket.method, ticket.purpose, ticket.state, ticket.replaces) == ("wechat", "bind", "pending", False)
    assert ticket.user_id == user.id
    assert timedelta(minutes=4) < ticket.expires_at - utcnow() <= timedelta(minutes=5)  # bind ≤ 5 min

    tag = status_tag(dialog)
    assert f'id="scan-status-{ticket.id}"' in tag
    assert f'hx-get="{PAGE}/scan/{ticket.id}"' in tag
    assert 'hx-trigger="every 2s"' in tag and 'hx-swap="outerHTML"' in tag
    assert poll_url(dialog) == f"{PAGE}/scan/{ticket.id}"
    assert "等待扫码…" in body
    assert f'href="{PAGE}/scan/{ticket.id}"' in body  # no JavaScript: a link that checks once


@HTMX
def test_bind_by_scan_until_bound(logged_in, user, phone, htmx):
    sid = logged_in.cookie(SESSION_COOKIE)
    dialog = open_bind_dialog(logged_in, htmx)
    token, poll = qr_token(dialog), poll_url(dialog)
    bearer = phone.login("o-alice")

    waiting = logged_in.get(poll, htmx=True)
    assert waiting.status_code == 200 and "等待扫码…" in text(waiting)
    assert 'data-state="pending"' in status_tag(waiting) and 'hx-trigger="every 2s"' in status_tag(waiting)
    assert "HX-Retarget" not in waiting.headers and "HX-Trigger" not in waiting.headers

    preview = phone.preview(bearer, token)
    assert preview.status_code == 200 and preview.get_json()["purpose"] == "bind"
    scanned = logged_in.get(poll, htmx=True)
    assert "已扫码" in text(scanned) and 'data-state="scanned"' in status_tag(scanned)
    assert wechat_factor(user) is None  # scanning is not confirming

    assert phone.confirm(bearer, token).status_code == 200
    done = logged_in.get(poll, htmx=htmx)

    assert done.status_code == 200 and "绑定成功" in text(done)
    assert is_fragment(done) == htmx
    assert done.headers["HX-Retarget"] == "#dialog-slot"
    assert done.headers["HX-Trigger"] == "factorsChanged"
    assert "scan-status" not in text(done)  # final: nothing polls any more
    assert "进入邮箱" not in text(done)
    assert logged_in.cookie(SESSION_COOKIE) == sid  # an already full session keeps its id
    assert openid_of(wechat_factor(user)) == "o-alice"

    row = rows(logged_in.get(PAGE, htmx=htmx))["wechat"]
    assert "已绑定" in row and "修改</a>" in row and "解绑</a>" in row and "绑定</a>" not in row.replace("解绑</a>", "")
    listed = phone.accounts(bearer)
    assert [a["account"] for a in listed] == [user.account]
    assert re.fullmatch(r"[0-9]{6}", listed[0]["code"])

    again = logged_in.get(poll, htmx=True)  # a consumed ticket: no second 绑定成功, no event
    assert "绑定成功" not in text(again) and "该二维码已处理" in text(again)
    assert "HX-Trigger" not in again.headers


def test_no_js_check_before_the_phone_confirmed_is_a_page(logged_in, user, phone):
    """Without JavaScript, "我已在手机上确认" clicked too early gives the page again, not a bare fragment."""
    dialog = open_bind_dialog(logged_in, False)
    poll = poll_url(dialog)

    early = logged_in.get(poll)

    assert early.status_code == 200 and "<html" in text(early) and "二次验证设置" in text(early)
    assert " open" in dialog_tag(early) and "等待扫码…" in text(early)
    assert f'href="{poll}"' in text(early)  # check again later
    assert ticket_of(qr_token(dialog)).state == "pending"  # the QR shown before still counts
    assert phone.confirm(phone.login("o-alice"), qr_token(dialog)).status_code == 200
    done = logged_in.get(poll)
    assert "<html" in text(done) and "绑定成功" in text(done)
    assert openid_of(wechat_factor(user)) == "o-alice"


def test_methods_table_refreshes_itself_on_factors_changed(logged_in, phone):
    """The done fragment's HX-Trigger is what the table listens to (hx-trigger on #methods)."""
    body = text(logged_in.get(PAGE))
    assert 'hx-trigger="factorsChanged from:body"' in body
    done = bind_wechat(logged_in, phone, phone.login("o-alice"))
    assert done.headers["HX-Trigger"] == "factorsChanged"
    methods = logged_in.get(PAGE, htmx=True, HX_Target="methods")
    assert is_fragment(methods) and 'id="methods"' in text(methods) and "二次验证设置" not in text(methods)
    assert "已绑定" in rows(methods)["wechat"]


def test_one_wechat_user_binds_several_accounts(logged_in, new_browser, user, bob, phone):
    bearer = phone.login("o-shared")
    bind_wechat(logged_in, phone, bearer)
    other = new_browser()
    assert location(other.login(bob.account, PASSWORD)) == "/"
    bind_wechat(other, phone, bearer, htmx=False)
    assert sorted(a["account"] for a in phone.accounts(bearer)) == sorted([user.account, bob.account])
    assert len({a["code"] for a in phone.accounts(bearer)}) in (1, 2)  # one code per account (own secrets)


@HTMX
def test_expired_bind_qr(logged_in, user, phone, htmx):
    dialog = open_bind_dialog(logged_in, htmx)
    token = qr_token(dialog)
    expire(token)

    expired = logged_in.get(poll_url(dialog), htmx=htmx)

    assert expired.status_code == 200 and "二维码已过期" in text(expired)
    assert expired.headers["HX-Retarget"] == "#dialog-slot" and "HX-Trigger" not in expired.headers
    assert "scan-status" not in text(expired)
    confirm = phone.confirm(phone.login("o-late"), token)
    assert confirm.status_code == 410 and confirm.get_json()["error"]["code"] == "ticket_expired"
    assert wechat_factor(user) is None
    assert "二维码已过期" in text(logged_in.get(poll_url(dialog), htmx=True))  # stays final


def test_reopening_the_dialog_replaces_the_qr(logged_in, user, phone):
    """取消 then 绑定 again: the first QR is dropped, so a phone that scanned it cannot bind."""
    first = open_bind_dialog(logged_in, True)
    second = open_bind_dialog(logged_in, True)
    assert qr_token(first) != qr_token(second)

    stale = phone.confirm(phone.login("o-alice"), qr_token(first))
    assert stale.status_code == 404 and stale.get_json()["error"]["code"] == "ticket_not_found"
    assert Ticket.select().count() == 1  # only the newer QR is live
    assert wechat_factor(user) is None
    bind_wechat(logged_in, phone, phone.login("o-alice"))  # the newer QR still works


@HTMX
def test_denied_on_the_phone(logged_in, user, phone, htmx):
    dialog = open_bind_dialog(logged_in, htmx)
    assert phone.deny(phone.login("o-alice"), qr_token(dialog)).status_code == 200

    denied = logged_in.get(poll_url(dialog), htmx=htmx)

    assert denied.status_code == 200 and DENIED in text(denied)
    assert denied.headers["HX-Retarget"] == "#dialog-slot" and "HX-Trigger" not in denied.headers
    assert wechat_factor(user) is None
    assert "未绑定" in rows(logged_in.get(PAGE))["wechat"]


@HTMX
def test_another_browser_cannot_poll_the_ticket(logged_in, new_browser, user, bob, phone, htmx):
    same_user = new_browser()  # alice in another browser, logged in before 微信 was bound
    assert location(same_user.login(user.account, PASSWORD)) == "/"
    other_user = new_browser()
    assert location(other_user.login(bob.account, PASSWORD)) == "/"
    dialog = open_bind_dialog(logged_in, True)
    poll = poll_url(dialog)
    assert phone.confirm(phone.login("o-alice"), qr_token(dialog)).status_code == 200

    for intruder in (same_user, other_user):
        response = intruder.get(poll, htmx=htmx)
        if htmx:  # a notice in the page's flash area
            assert response.status_code == 200 and response.headers["HX-Retarget"] == "#flash"
        else:
            assert response.status_code == 404 and "<html" in text(response)
        assert "二维码不存在" in text(response) and "绑定成功" not in text(response)
        assert "HX-Trigger" not in response.headers

    half = new_browser()  # alice's password in a third browser: now at the second step
    assert location(half.login(user.account, PASSWORD)) == "/login/verify"
    assert location(half.get(poll, htmx=htmx)) == "/login/verify"

    assert ticket_of(qr_token(dialog)).state == "approved"  # untouched by the others
    assert "绑定成功" in text(logged_in.get(poll, htmx=True))


def test_anonymous_browser_cannot_poll(logged_in, new_browser, phone):
    dialog = open_bind_dialog(logged_in, True)
    anonymous = new_browser()
    assert location(anonymous.get(poll_url(dialog))) == "/login"
    assert location(anonymous.get(poll_url(dialog), htmx=True)) == "/login"  # HX-Redirect, never a 3xx


def test_phone_cannot_bind_after_the_browser_logged_out(logged_in, user, phone):
    dialog = open_bind_dialog(logged_in, True)
    assert location(logged_in.post("/logout")) == "/login"
    response = phone.confirm(phone.login("o-alice"), qr_token(dialog))
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "session_ended"
    assert wechat_factor(user) is None


def test_already_bound_user_is_sent_to_change(logged_in, user, phone):
    bind_wechat(logged_in, phone, phone.login("o-alice"))
    count = Ticket.select().count()
    response = logged_in.get(WX_BIND, htmx=True)
    assert response.status_code == 200 and "微信已绑定;如需更换请使用“修改”" in text(response)
    assert "data-qr-url" not in text(response)
    assert Ticket.select().count() == count


@HTMX
def test_forced_binding_by_wechat_enters_the_mailbox(app, browser, user, phone, htmx):
    policy.set_value("force_2fa", "listed")
    accounts.set_policy(user.account, force=True)
    assert location(browser.login(user.account, PASSWORD)) == PAGE
    half = browser.cookie(SESSION_COOKIE)
    assert location(browser.get("/")) == PAGE  # nothing else before binding

    page = browser.get(PAGE)
    assert "根据管理员要求" in text(page) and f'href="{WX_BIND}"' in rows(page)["wechat"]
    dialog = open_bind_dialog(browser, htmx)
    assert phone.confirm(phone.login("o-alice"), qr_token(dialog)).status_code == 200

    done = browser.get(poll_url(dialog), htmx=htmx)

    assert "绑定成功" in text(done) and "进入邮箱" in text(done) and 'href="/login/continue"' in text(done)
    assert done.headers["HX-Trigger"] == "factorsChanged"
    full = browser.cookie(SESSION_COOKIE)
    assert full and full != half  # the session id rotated when the session became full
    assert sessions.resolve(half) is None and sessions.resolve(full).stage == sessions.FULL
    assert browser.get("/").status_code == 200
    stale = app.test_client()
    stale.set_cookie(SESSION_COOKIE, half)
    assert location(stale.get("/")) == "/login"


def test_forced_binding_expired_qr_keeps_the_session_binding(browser, user, phone):
    policy.set_value("force_2fa", "listed")
    accounts.set_policy(user.account, force=True)
    assert location(browser.login(user.account, PASSWORD)) == PAGE
    dialog = open_bind_dialog(browser, True)
    Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert "二维码已过期" in text(browser.get(poll_url(dialog), htmx=True))
    assert location(browser.get("/")) == PAGE


# --- the QR URL in a browser, and the development simulator ------------------------------------


@pytest.mark.parametrize("ticket", ["anything", "x" * 200, "%E4%BD%A0%E5%A5%BD"])
def test_qr_url_in_a_browser_says_use_wechat(new_browser, ticket):
    response = new_browser().get(f"/wx/t/{ticket}")
    assert response.status_code == 200
    assert "请使用微信扫一扫" in text(response)
    assert "在模拟器中打开" not in text(response)


def test_real_qr_url_in_a_browser_changes_nothing(logged_in, new_browser, user):
    dialog = open_bind_dialog(logged_in, True)
    url = qr_url(dialog)
    response = new_browser().get(url.removeprefix(PUBLIC_URL))
    assert response.status_code == 200 and "请使用微信扫一扫" in text(response)
    assert ticket_of(qr_token(dialog)).state == "pending"


def test_simulator_is_off_by_default(logged_in):
    assert logged_in.get("/dev/miniprogram").status_code == 404
    assert "在小程序模拟器中打开" not in text(open_bind_dialog(logged_in, True))


@pytest.mark.app_config(DEV_SIMULATORS=True)
def test_simulator_page_and_links_in_development(logged_in, new_browser):
    simulator = new_browser().get("/dev/miniprogram")
    assert simulator.status_code == 200 and "邮箱安全助手" in text(simulator)

    dialog = open_bind_dialog(logged_in, True)
    link = re.search(r'<a href="([^"]+)"[^>]*>在小程序模拟器中打开</a>', text(dialog))
    assert link, text(dialog)
    assert link.group(1).startswith("/dev/miniprogram?scan=")
    assert qr_token(dialog) in link.group(1)
    assert "在模拟器中打开" in text(new_browser().get("/wx/t/anything"))
