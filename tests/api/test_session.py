"""POST /session: code2session through wechatpy against the stub, and every way it can fail."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
from flask import Flask, jsonify, request

from portal import crypto
from portal.models import ApiToken, CacheEntry, WeChatUser, utcnow
from tests.api.support import API, STUB_APPID, closed_port_url, error_code, serve
from wechat_backend import client as wechat_client

TOKEN_KEY = f"{STUB_APPID}_access_token"


def nothing_written() -> bool:
    return ApiToken.select().count() == 0 and WeChatUser.select().count() == 0


def test_sign_in_issues_a_bearer_token(ctx, phone, wechat_stub, monkeypatch):
    seen = []
    real = wechat_client.code_to_session
    monkeypatch.setattr(wechat_client, "code_to_session", lambda code: seen.append(real(code)) or seen[-1])

    response = phone.sign_in(wechat_stub.login_code("o-alice"))

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"token", "expires_in"}
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    assert body["expires_in"] == 7200
    (wx_session,) = seen
    assert wx_session.openid == "o-alice"
    # The WeChat session_key never leaves the server and is stored encrypted.
    assert wx_session.session_key not in response.get_data(as_text=True)
    wx_user = WeChatUser.get(WeChatUser.openid == "o-alice")
    assert wx_user.unionid == "union-o-alice"
    assert wx_user.session_key != wx_session.session_key
    assert wx_session.session_key not in wx_user.session_key
    assert crypto.decrypt(wx_user.session_key) == wx_session.session_key
    listing = phone.call("GET", "/accounts", body["token"])
    assert listing.status_code == 200
    assert wx_session.session_key not in listing.get_data(as_text=True)


def test_the_bearer_token_is_stored_only_as_its_hash(ctx, wx_login):
    token = wx_login("o-alice")
    row = ApiToken.get()
    assert row.token_hash != token
    assert row.token_hash == crypto.token_hash(token)
    assert token not in str(row.__data__)
    assert row.wechat_user.openid == "o-alice"
    assert timedelta(minutes=119) < row.expires_at - utcnow() <= timedelta(hours=2)


def test_signing_in_again_updates_the_same_wechat_user(ctx, wx_login):
    first, second = wx_login("o-alice"), wx_login("o-alice")
    assert first != second
    assert WeChatUser.select().count() == 1
    assert ApiToken.select().count() == 2


def test_a_code_is_good_for_one_sign_in(ctx, phone, wechat_stub):
    code = wechat_stub.login_code("o-alice")
    assert phone.sign_in(code).status_code == 200
    again = phone.sign_in(code)  # the stub answers 40163 "code been used"
    assert (again.status_code, error_code(again)) == (401, "invalid_code")
    assert ApiToken.select().count() == 1


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("never-issued-code", 401, "invalid_code"),  # 40029
        ("stub-40029", 401, "invalid_code"),
        ("stub-40163", 401, "invalid_code"),
        ("stub-45011", 429, "rate_limited"),
        ("stub-40226", 403, "user_blocked"),
        ("stub--1", 503, "wechat_unavailable"),
        ("stub-40125", 503, "wechat_unavailable"),  # undocumented for code2session: unavailable
    ],
)
def test_wechat_errors_are_mapped(ctx, phone, wechat_stub, code, status, error):
    _, calls = wechat_stub.counts()
    response = phone.sign_in(code)
    assert (response.status_code, error_code(response)) == (status, error)
    assert isinstance(response.get_json()["error"]["message"], str)
    assert wechat_stub.counts()[1] == calls + 1  # asked WeChat exactly once
    assert nothing_written()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {}},
        {"json": {"code": None}},
        {"json": {"code": 12345}},
        {"json": {"code": ["abc"]}},
        {"json": {"code": {"a": 1}}},
        {"json": {"code": ""}},
        {"json": {"code": "x" * 129}},
        {"json": {"openid": "o-alice"}},
        {},  # no body at all
    ],
)
def test_a_missing_or_malformed_code_is_400(ctx, phone, wechat_stub, kwargs):
    before = wechat_stub.counts()
    response = phone.client.post(f"{API}/session", **kwargs)
    assert (response.status_code, error_code(response)) == (400, "invalid_code")
    assert wechat_stub.counts() == before  # WeChat is not asked
    assert nothing_written()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "code=abc", "content_type": "application/x-www-form-urlencoded"},
        {"data": "abc", "content_type": "text/plain"},
        {"data": "{not json", "content_type": "application/json"},
        {"json": ["code", "abc"]},
        {"json": "abc"},
        {"data": b"\xff\xfe\x00", "content_type": "application/json"},
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(ctx, phone, wechat_stub, kwargs):
    before = wechat_stub.counts()
    response = phone.client.post(f"{API}/session", **kwargs)
    assert (response.status_code, error_code(response)) == (400, "invalid_json")
    assert wechat_stub.counts() == before
    assert nothing_written()


@pytest.mark.parametrize("key", ["WECHAT_APPID", "WECHAT_SECRET"])
def test_wechat_not_configured_is_503(app, ctx, phone, wechat_stub, key):
    code = wechat_stub.login_code("o-alice")
    app.config[key] = ""
    before = wechat_stub.counts()
    response = phone.sign_in(code)
    assert (response.status_code, error_code(response)) == (503, "wechat_not_configured")
    assert wechat_stub.counts() == before
    assert nothing_written()


def test_a_wrong_app_secret_is_503(app, ctx, phone, wechat_stub):
    code = wechat_stub.login_code("o-alice")
    app.config["WECHAT_SECRET"] = "not-the-secret"
    response = phone.sign_in(code)
    assert (response.status_code, error_code(response)) == (503, "wechat_unavailable")
    assert nothing_written()


@pytest.mark.timeout(15)
def test_wechat_down_is_503_at_once(app, ctx, phone):
    app.config["WECHAT_API_BASE"] = closed_port_url()
    response = phone.sign_in("any-code")
    assert (response.status_code, error_code(response)) == (503, "wechat_unavailable")
    assert nothing_written()


@pytest.mark.timeout(15)
def test_a_silent_wechat_times_out_instead_of_hanging(app, ctx, phone, monkeypatch):
    """wechatpy sends the token request without a timeout; the portal's session adds one."""
    monkeypatch.setattr(wechat_client, "TIMEOUT", (0.5, 0.5))
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        app.config["WECHAT_API_BASE"] = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        response = phone.sign_in("any-code")
    assert (response.status_code, error_code(response)) == (503, "wechat_unavailable")
    assert nothing_written()


# --- the access token --------------------------------------------------------------------------


def test_the_access_token_is_fetched_once_and_shared_through_the_database(ctx, wx_login, wechat_stub):
    tokens, calls = wechat_stub.counts()
    for openid in ("o-1", "o-2", "o-3", "o-1"):
        wx_login(openid)
    assert wechat_stub.counts() == (tokens + 1, calls + 4)
    entry = CacheEntry.get(CacheEntry.key == TOKEN_KEY)
    assert entry.value
    assert entry.expires_at > utcnow() + timedelta(minutes=100)

    # Every request builds a new client: the token comes from the shared table, nothing else.
    CacheEntry.update(value="token-of-another-worker").where(CacheEntry.key == TOKEN_KEY).execute()
    wx_login("o-4")
    assert wechat_stub.counts()[0] == tokens + 1
    assert CacheEntry.get(CacheEntry.key == TOKEN_KEY).value == "token-of-another-worker"

    CacheEntry.update(expires_at=utcnow() - timedelta(seconds=1)).where(CacheEntry.key == TOKEN_KEY).execute()
    wx_login("o-5")
    assert wechat_stub.counts()[0] == tokens + 2  # an expired token is fetched again
    assert CacheEntry.get(CacheEntry.key == TOKEN_KEY).value != "token-of-another-worker"

    CacheEntry.delete().execute()
    wx_login("o-6")
    assert wechat_stub.counts()[0] == tokens + 3


class FlakyWeChat:
    """A tiny WeChat that answers jscode2session from a script of replies, counting calls."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = {"token": 0, "jscode2session": 0}
        self.lock = threading.Lock()
        self.app = Flask("flaky_wechat")
        self.app.add_url_rule("/cgi-bin/token", view_func=self.token)
        self.app.add_url_rule("/sns/jscode2session", view_func=self.jscode2session)

    def token(self):
        with self.lock:
            self.calls["token"] += 1
            return jsonify(access_token=f"token-{self.calls['token']}", expires_in=7200)

    def jscode2session(self):
        with self.lock:
            self.calls["jscode2session"] += 1
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply == "ok":
            return jsonify(openid="o-flaky", session_key="flaky-session-key", unionid="")
        if reply == "http500":
            return "boom", 500
        if reply == "html":
            return "<html>maintenance</html>", 200
        if reply == "no-openid":
            return jsonify(session_key="k")
        assert request.args.get("access_token", "").startswith("token-")
        return jsonify(errcode=reply, errmsg="access_token invalid")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_a_token_error_is_retried_once_only(app, ctx, phone, errcode):
    wechat = FlakyWeChat([errcode])  # always a token error
    with serve(wechat.app) as base:
        app.config["WECHAT_API_BASE"] = base
        response = phone.sign_in("some-code")
    assert (response.status_code, error_code(response)) == (503, "wechat_unavailable")
    assert wechat.calls == {"token": 2, "jscode2session": 2}
    assert nothing_written()


def test_a_token_error_then_success_signs_in(app, ctx, phone):
    wechat = FlakyWeChat([40001, "ok"])
    with serve(wechat.app) as base:
        app.config["WECHAT_API_BASE"] = base
        response = phone.sign_in("some-code")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert wechat.calls == {"token": 2, "jscode2session": 2}  # the stale token was dropped and refetched
    assert CacheEntry.get(CacheEntry.key == TOKEN_KEY).value == "token-2"
    assert WeChatUser.get().openid == "o-flaky"


@pytest.mark.parametrize("reply", ["http500", "html", "no-openid"])
def test_a_garbled_wechat_reply_is_503(app, ctx, phone, reply):
    wechat = FlakyWeChat([reply])
    with serve(wechat.app) as base:
        app.config["WECHAT_API_BASE"] = base
        response = phone.sign_in("some-code")
    assert (response.status_code, error_code(response)) == (503, "wechat_unavailable")
    assert wechat.calls["jscode2session"] == 1
    assert nothing_written()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        ("GET", "/session", {}, 405, "method_not_allowed"),
        ("POST", "/accounts", {}, 405, "method_not_allowed"),
        ("GET", "/nope", {}, 404, "not_found"),
        ("GET", "/tickets/", {}, 404, "not_found"),
        ("POST", "/session", {"data": "x" * (1024 * 1024 + 1), "content_type": "application/json"}, 413, "too_large"),
    ],
)
def test_framework_errors_also_use_the_json_envelope(ctx, phone, method, path, kwargs, status, error):
    response = phone.client.open(f"{API}{path}", method=method, **kwargs)
    assert (response.status_code, error_code(response)) == (status, error)
    assert response.mimetype == "application/json"
    assert nothing_written()
