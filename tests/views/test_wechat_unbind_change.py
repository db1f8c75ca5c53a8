"""解绑 / 修改 微信 (manual 三(二)): verified by a WeChat scan or the mini-program's code; 修改 binds
the new WeChat and replaces the old one only when the new QR is confirmed (invariants 7 and 9)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal.models import Grant, Ticket, TrustedDevice, utcnow
from portal.services import accounts, policy, trust
from tests.api.support import error_code
from tests.conftest import PASSWORD
from tests.helpers import openid_of, text
from tests.views.support import PAGE, dialog_secret, enrollment_of, factor_count, is_fragment, location, rows
from tests.views.wechat_support import *  # noqa: F403 -- fixtures: app_config, phone, wechat_stub
from tests.views.wechat_support import (
    PUBLIC_URL,
    expire,
    login_by_code,
    poll_url,
    qr_token,
    qr_url,
    query,
    status_tag,
    ticket_of,
    wechat_factor,
    wx_code,
)

HTMX = pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
UNBIND = f"{PAGE}/wechat/unbind"
CHANGE = f"{PAGE}/wechat/change"
DENIED = "该请求已在手机上被拒绝"  # the browser is not told to change the password: it may be the intruder


@pytest.fixture
def owner(user, phone) -> str:
    """alice has bound 微信; the bearer token of the WeChat user who holds it."""
    bearer = phone.login("o-owner")
    phone.bind(bearer, user)
    return bearer


@pytest.fixture
def logged_in(browser, user, phone, owner, clock):
    """alice's full session, logged in with the mini-program's code and 信任此设备."""
    login_by_code(browser, user, phone, owner, clock, trust=True)
    assert len(trust.active(user)) == 1
    return browser


@pytest.fixture
def with_totp(user, totp_secret):
    """alice has 第三方 OTP (offered to her by the admin) besides 微信."""
    accounts.set_policy(user.account, methods="totp")
    return totp_secret


def link(body: str, label: str) -> str:
    """The href of the link with this text."""
    match = re.search(rf'<a href="([^"]+)"[^>]*>{label}</a>', body)
    assert match, f"no link {label!r}"
    return match.group(1).replace("&amp;", "&")


def assert_final(response, message: str, changed: bool = True) -> None:
    assert response.status_code == 200 and message in text(response), text(response)
    assert response.headers["HX-Retarget"] == "#dialog-slot"
    assert (response.headers.get("HX-Trigger") == "factorsChanged") == changed
    assert "scan-status" not in text(response)


# --- 解绑 -----------------------------------------------------------------------------------------


@HTMX
def test_unbind_dialog_defaults_to_the_qr(logged_in, user, htmx):
    dialog = logged_in.get(UNBIND, htmx=htmx)
    body = text(dialog)

    assert dialog.status_code == 200 and is_fragment(dialog) == htmx
    assert "微信验证" in body and "解绑微信前,打开【微信】扫码确认授权" in body
    token = qr_token(dialog)
    assert qr_url(dialog) == f"{PUBLIC_URL}/wx/t/{token}"
    ticket = ticket_of(token)
    assert (ticket.purpose, ticket.method, ticket.target, ticket.state) == ("unbind", "wechat", "wechat", "pending")
    assert f'hx-get="{PAGE}/scan/{ticket.id}"' in status_tag(dialog)
    assert 'hx-trigger="every 2s"' in status_tag(dialog)
    code_mode = link(body, "验证码")
    assert code_mode.startswith(UNBIND) and query(code_mode) == {"via": ["wechat"], "mode": ["code"]}
    assert "更换验证方式" not in body  # nothing else is bound


@HTMX
def test_unbind_by_scan(logged_in, user, phone, owner, htmx):
    dialog = logged_in.get(UNBIND, htmx=htmx)
    token, poll = qr_token(dialog), poll_url(dialog)
    preview = phone.preview(owner, token)
    assert preview.status_code == 200 and preview.get_json()["purpose"] == "unbind"
    assert "已扫码" in text(logged_in.get(poll, htmx=True))
    assert phone.confirm(owner, token).status_code == 200
    assert wechat_factor(user) is not None  # the browser acts when it polls

    done = logged_in.get(poll, htmx=htmx)

    assert_final(done, "解绑成功")
    assert is_fragment(done) == htmx
    assert wechat_factor(user) is None
    assert trust.active(user) == []  # trusted devices go with the factor
    assert phone.signed_out(owner)  # its token rested on the removed factor
    row = rows(logged_in.get(PAGE))["wechat"]
    assert "未绑定" in row and "绑定</a>" in row and "解绑</a>" not in row
    assert logged_in.get("/").status_code == 200  # the session itself stays
    assert "解绑成功" not in text(logged_in.get(poll, htmx=True))  # consumed: not twice


@HTMX
def test_unbind_by_code(logged_in, user, phone, owner, clock, htmx):
    dialog = logged_in.get(f"{UNBIND}?via=wechat&mode=code", htmx=htmx)
    body = text(dialog)
    assert "解绑微信前,打开【微信-邮箱安全助手】输入验证码" in body
    assert "data-qr-url" not in body and 'name="code"' in body and 'name="via" value="wechat"' in body
    assert f'action="{UNBIND}"' in body
    assert query(link(body, "扫二维码")) == {"via": ["wechat"]}

    done = logged_in.post(UNBIND, {"via": "wechat", "code": wx_code(phone, owner, user.account, clock)}, htmx=htmx)

    assert done.status_code == 200 and "解绑成功" in text(done)
    assert done.headers["HX-Trigger"] == "factorsChanged"
    assert wechat_factor(user) is None and trust.active(user) == []
    assert phone.signed_out(owner)  # its token rested on the removed factor


@HTMX
def test_unbind_with_a_wrong_code_shows_the_dialog_again(logged_in, user, phone, owner, clock, htmx):
    right = wx_code(phone, owner, user.account, clock)
    wrong = next(c for c in ("000000", "111111") if c != right)

    response = logged_in.post(UNBIND, {"via": "wechat", "code": wrong}, htmx=htmx)

    body = text(response)
    assert response.status_code == 200 and is_fragment(response) == htmx
    assert "验证码错误" in body and 'name="code"' in body and "微信验证" in body
    assert "HX-Trigger" not in response.headers
    assert wechat_factor(user) is not None and len(trust.active(user)) == 1
    assert logged_in.post(UNBIND, {"via": "wechat", "code": right}, htmx=htmx).headers["HX-Trigger"]
    assert wechat_factor(user) is None


def test_unbind_denied_on_the_phone(logged_in, user, phone, owner):
    dialog = logged_in.get(UNBIND, htmx=True)
    assert phone.deny(owner, qr_token(dialog)).status_code == 200
    assert_final(logged_in.get(poll_url(dialog), htmx=True), DENIED, changed=False)
    assert openid_of(wechat_factor(user)) == "o-owner" and len(trust.active(user)) == 1


def test_unbind_cannot_be_confirmed_by_another_wechat_user(logged_in, user, phone):
    dialog = logged_in.get(UNBIND, htmx=True)
    response = phone.confirm(phone.login("o-stranger"), qr_token(dialog))
    assert response.status_code == 403 and error_code(response) == "not_bound_to_you"
    assert "等待扫码…" in text(logged_in.get(poll_url(dialog), htmx=True))
    assert wechat_factor(user) is not None


def test_unbind_qr_expires(logged_in, user, phone, owner):
    dialog = logged_in.get(UNBIND, htmx=True)
    expire(qr_token(dialog))
    assert_final(logged_in.get(poll_url(dialog), htmx=True), "二维码已过期", changed=False)
    assert phone.confirm(owner, qr_token(dialog)).status_code == 410
    assert wechat_factor(user) is not None


def test_forced_user_cannot_unbind_the_only_factor(logged_in, user, phone, owner, clock):
    policy.set_value("force_2fa", "listed")
    accounts.set_policy(user.account, force=True)
    dialog = logged_in.get(UNBIND, htmx=True)
    assert "不能解绑唯一的验证方式" in text(dialog) and "data-qr-url" not in text(dialog)
    refused = logged_in.post(UNBIND, {"via": "wechat", "code": wx_code(phone, owner, user.account, clock)}, htmx=True)
    assert "不能解绑唯一的验证方式" in text(refused) and "HX-Trigger" not in refused.headers
    assert wechat_factor(user) is not None


# --- 修改 -----------------------------------------------------------------------------------------


def rebind_dialog_of(response):
    """The new bind dialog 修改 leads to: a bind QR with the rebind wording."""
    body = text(response)
    assert "修改微信:绑定新的微信" in body and "请打开【微信】扫码绑定" in body, body
    assert "确认前原绑定的微信仍然有效" in body
    ticket = ticket_of(qr_token(response))
    assert (ticket.purpose, ticket.method, ticket.replaces, ticket.state) == ("bind", "wechat", True, "pending")
    assert poll_url(response) == f"{PAGE}/scan/{ticket.id}"
    return response


@HTMX
@pytest.mark.parametrize("newcomer", ["o-new-phone", "o-owner"], ids=["another-wechat", "same-wechat"])
def test_change_by_scan(logged_in, new_browser, user, phone, owner, clock, htmx, newcomer):
    dialog = logged_in.get(CHANGE, htmx=htmx)
    assert "修改微信前,打开【微信】扫码确认授权" in text(dialog)
    verify = ticket_of(qr_token(dialog))
    assert (verify.purpose, verify.target) == ("rebind", "wechat")
    assert phone.preview(owner, qr_token(dialog)).get_json()["purpose"] == "rebind"
    assert phone.confirm(owner, qr_token(dialog)).status_code == 200

    verified = logged_in.get(poll_url(dialog), htmx=htmx)

    assert verified.status_code == 200 and is_fragment(verified) == htmx
    assert verified.headers["HX-Retarget"] == "#dialog-slot" and "HX-Trigger" not in verified.headers
    rebind_dialog_of(verified)
    old_secret_code = wx_code(phone, owner, user.account, clock)
    assert qr_token(verified) != qr_token(dialog)

    # Until the new QR is confirmed, the old 微信 still works: its codes log in elsewhere.
    assert openid_of(wechat_factor(user)) == "o-owner"
    login_by_code(new_browser(), user, phone, owner, clock)
    assert len(trust.active(user)) == 1

    bearer = phone.login(newcomer)
    assert phone.preview(bearer, qr_token(verified)).get_json()["purpose"] == "bind"
    assert phone.confirm(bearer, qr_token(verified)).status_code == 200
    done = logged_in.get(poll_url(verified), htmx=htmx)

    assert_final(done, "绑定成功")
    assert openid_of(wechat_factor(user)) == newcomer and factor_count(user, "wechat") == 1
    assert trust.active(user) == []  # a changed factor revokes the trusted devices
    assert [a["account"] for a in phone.accounts(bearer)] == [user.account]
    if newcomer != "o-owner":
        assert phone.signed_out(owner)  # its token rested on the removed factor
    assert wx_code(phone, bearer, user.account) != old_secret_code or newcomer == "o-owner"
    stale = new_browser()  # a code of the replaced factor no longer logs in
    assert location(stale.login(user.account, PASSWORD)) == "/login/verify"
    refused = stale.post("/login/verify", {"method": "wechat", "code": old_secret_code})
    assert refused.status_code == 400
    login_by_code(new_browser(), user, phone, bearer, clock)  # the new one does


def test_abandoned_change_leaves_the_old_wechat_working(logged_in, new_browser, user, phone, owner, clock):
    dialog = logged_in.get(CHANGE, htmx=True)
    assert phone.confirm(owner, qr_token(dialog)).status_code == 200
    new_qr = rebind_dialog_of(logged_in.get(poll_url(dialog), htmx=True))
    label = wechat_factor(user).label

    page = logged_in.get(PAGE)  # 取消: back to the page, the new QR never scanned
    row = rows(page)["wechat"]
    assert "已绑定" in row and label in row
    assert "等待扫码…" in text(logged_in.get(poll_url(new_qr), htmx=True))
    assert [a["account"] for a in phone.accounts(owner)] == [user.account]
    login_by_code(new_browser(), user, phone, owner, clock, trust=True)
    assert len(trust.active(user)) == 2  # nothing revoked the trusted devices either

    # The QR expires unconfirmed: nothing changed.
    expire(qr_token(new_qr))
    assert "二维码已过期" in text(logged_in.get(poll_url(new_qr), htmx=True))
    assert phone.confirm(phone.login("o-late"), qr_token(new_qr)).status_code == 410
    assert openid_of(wechat_factor(user)) == "o-owner" and len(trust.active(user)) == 2


def test_change_grant_expired_before_the_new_qr_is_confirmed(logged_in, user, phone, owner):
    dialog = logged_in.get(CHANGE, htmx=True)
    assert phone.confirm(owner, qr_token(dialog)).status_code == 200
    new_qr = rebind_dialog_of(logged_in.get(poll_url(dialog), htmx=True))
    Grant.update(expires_at=utcnow() - timedelta(seconds=1)).execute()

    response = phone.confirm(phone.login("o-new-phone"), qr_token(new_qr))

    assert response.status_code == 410 and error_code(response) == "grant_expired"
    assert openid_of(wechat_factor(user)) == "o-owner"
    assert ticket_of(qr_token(new_qr)).state == "pending"  # nothing half-written
    assert "绑定成功" not in text(logged_in.get(poll_url(new_qr), htmx=True))


@HTMX
def test_change_by_code(logged_in, user, phone, owner, clock, htmx):
    dialog = logged_in.get(f"{CHANGE}?via=wechat&mode=code", htmx=htmx)
    assert "修改微信前,打开【微信-邮箱安全助手】输入验证码" in text(dialog)
    assert "data-qr-url" not in text(dialog)

    verified = logged_in.post(CHANGE, {"via": "wechat", "code": wx_code(phone, owner, user.account, clock)}, htmx=htmx)

    assert verified.status_code == 200 and is_fragment(verified) == htmx
    assert "HX-Trigger" not in verified.headers
    rebind_dialog_of(verified)
    assert openid_of(wechat_factor(user)) == "o-owner"
    bearer = phone.login("o-new-phone")
    assert phone.confirm(bearer, qr_token(verified)).status_code == 200
    assert_final(logged_in.get(poll_url(verified), htmx=htmx), "绑定成功")
    assert openid_of(wechat_factor(user)) == "o-new-phone"
    assert phone.signed_out(owner)  # its token rested on the removed factor


def test_change_with_a_wrong_code_grants_nothing(logged_in, user, phone, owner, clock):
    right = wx_code(phone, owner, user.account, clock)
    wrong = next(c for c in ("000000", "111111") if c != right)
    response = logged_in.post(CHANGE, {"via": "wechat", "code": wrong}, htmx=True)
    assert response.status_code == 200 and "验证码错误" in text(response) and "data-qr-url" not in text(response)
    assert Grant.select().count() == 0
    assert "微信已绑定" in text(logged_in.get(f"{PAGE}/wechat/bind", htmx=True))  # no way round 修改


# --- the other bound method -----------------------------------------------------------------------


@HTMX
def test_unbind_totp_verified_by_wechat_scan(logged_in, user, phone, owner, with_totp, htmx):
    default = text(logged_in.get(f"{PAGE}/totp/unbind", htmx=htmx))
    assert "第三方 OTP验证" in default and "data-qr-url" not in default  # a code of the factor itself
    switch = link(default, "微信")
    assert query(switch) == {"via": ["wechat"]} and "更换验证方式" in default

    dialog = logged_in.get(switch, htmx=htmx)
    assert "微信验证" in text(dialog) and "解绑第三方 OTP前,打开【微信】扫码确认授权" in text(dialog)
    ticket = ticket_of(qr_token(dialog))
    assert (ticket.purpose, ticket.method, ticket.target) == ("unbind", "wechat", "totp")
    assert query(link(text(dialog), "第三方 OTP")) == {"via": ["totp"]}  # 更换验证方式 back
    assert phone.confirm(owner, qr_token(dialog)).status_code == 200

    assert_final(logged_in.get(poll_url(dialog), htmx=htmx), "解绑成功")
    assert factor_count(user, "totp") == 0
    assert wechat_factor(user) is not None
    assert [a["account"] for a in phone.accounts(owner)] == [user.account]


def test_change_totp_verified_by_wechat_scan(logged_in, user, phone, owner, clock, with_totp):
    dialog = logged_in.get(f"{PAGE}/totp/change?via=wechat", htmx=True)
    assert "修改第三方 OTP前,打开【微信】扫码确认授权" in text(dialog)
    assert (ticket_of(qr_token(dialog)).purpose, ticket_of(qr_token(dialog)).target) == ("rebind", "totp")
    assert phone.confirm(owner, qr_token(dialog)).status_code == 200

    verified = logged_in.get(poll_url(dialog), htmx=True)

    assert verified.headers["HX-Retarget"] == "#dialog-slot"
    assert "修改第三方 OTP:绑定新的验证器" in text(verified) and "data-otpauth-uri" in text(verified)
    assert factor_count(user, "totp") == 1  # the old one until the new one is confirmed
    new_secret = dialog_secret(verified)
    assert new_secret != with_totp
    done = logged_in.post(
        f"{PAGE}/totp/bind", {"enrollment": enrollment_of(verified), "code": clock.next_code(new_secret)}, htmx=True
    )
    assert "绑定成功" in text(done) and done.headers["HX-Trigger"] == "factorsChanged"
    assert factor_count(user, "totp") == 1 and wechat_factor(user) is not None
    assert trust.active(user) == []


def test_unbind_totp_verified_by_wechat_code(logged_in, user, phone, owner, clock, with_totp):
    code = wx_code(phone, owner, user.account, clock)
    done = logged_in.post(f"{PAGE}/totp/unbind", {"via": "wechat", "code": code}, htmx=True)
    assert "解绑成功" in text(done) and done.headers["HX-Trigger"] == "factorsChanged"
    assert factor_count(user, "totp") == 0 and wechat_factor(user) is not None


def test_wechat_dialog_offers_the_other_bound_method(logged_in, user, with_totp, clock):
    body = text(logged_in.get(UNBIND, htmx=True))
    assert "更换验证方式" in body
    switch = link(body, "第三方 OTP")
    assert switch.startswith(UNBIND) and query(switch) == {"via": ["totp"]}
    by_totp = logged_in.get(switch, htmx=True)
    assert "第三方 OTP验证" in text(by_totp) and "data-qr-url" not in text(by_totp)
    done = logged_in.post(UNBIND, {"via": "totp", "code": clock.next_code(with_totp)}, htmx=True)
    assert "解绑成功" in text(done) and wechat_factor(user) is None and factor_count(user, "totp") == 1


def test_wechat_scan_for_a_method_that_is_not_bound(logged_in, user):
    response = logged_in.get(f"{PAGE}/totp/unbind?via=wechat", htmx=True)
    assert response.status_code == 200 and "该验证方式未绑定" in text(response)
    assert Ticket.select().where(Ticket.purpose == "unbind").count() == 0
    assert TrustedDevice.select().count() == 1


@pytest.mark.app_config(DEV_SIMULATORS=True)
def test_unbind_qr_links_to_the_simulator_in_development(logged_in):
    dialog = logged_in.get(UNBIND, htmx=True)
    assert qr_token(dialog) in link(text(dialog), "在小程序模拟器中打开")


@HTMX
def test_no_js_check_before_the_phone_confirmed_an_unbind(logged_in, user, phone, owner, htmx):
    dialog = logged_in.get(UNBIND, htmx=htmx)
    early = logged_in.get(poll_url(dialog), htmx=htmx)
    assert early.status_code == 200 and "等待扫码…" in text(early) and is_fragment(early) == htmx
    assert "解绑成功" not in text(early) and wechat_factor(user) is not None
    assert phone.confirm(owner, qr_token(dialog)).status_code == 200
    assert_final(logged_in.get(poll_url(dialog), htmx=htmx), "解绑成功")
