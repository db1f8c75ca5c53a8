"""The only code that talks to WeChat: code2session through wechatpy, bounded and mapped.

wechatpy fetches an access token before any call and, with auto_retry, retries token errors
without limit; here every HTTP request has a timeout, auto_retry is off, a token error drops the
shared cached token and retries once, and every WeChat failure becomes a DomainError with a
stable code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import requests
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

from portal.models import CacheEntry, utcnow
from portal.services.errors import DomainError

TIMEOUT = (3.05, 5)  # connect, read seconds
TOKEN_ERRORS = {40001, 40014, 42001}  # access_token invalid / expired: refetch once

ERRORS = {
    40029: (401, "invalid_code", _l("微信登录凭证无效,请重新进入小程序")),
    40163: (401, "invalid_code", _l("微信登录凭证已使用,请重新进入小程序")),
    45011: (429, "rate_limited", _l("操作太频繁,请稍后再试")),
    40226: (403, "user_blocked", _l("该微信用户存在风险,无法登录")),
    -1: (503, "wechat_unavailable", _l("微信服务繁忙,请稍后再试")),
}
UNAVAILABLE = (503, "wechat_unavailable", _l("微信服务暂时不可用,请稍后再试"))


class WeChatError(DomainError):
    """A WeChat failure, mapped to the API's error envelope."""


@dataclass(frozen=True)
class WeChatSession:
    appid: str  # the mini-program: an openid means one person within one appid only
    openid: str
    unionid: str
    session_key: str


class _TimeoutSession(requests.Session):
    """requests.Session whose every request has a timeout (wechatpy omits it for the token)."""

    def request(self, *args, **kwargs):
        kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT
        return super().request(*args, **kwargs)


class DatabaseStorage(SessionStorage):
    """wechatpy's token storage in the database, so that every worker shares one access token."""

    def get(self, key, default=None):
        entry = CacheEntry.get_or_none(CacheEntry.key == key)
        if entry is None or (entry.expires_at and entry.expires_at <= utcnow()):
            return default
        return entry.value

    def set(self, key, value, ttl=None):
        # Keep a safety margin so that a token is never used in its last minutes.
        expires = utcnow() + timedelta(seconds=max(0, int(ttl) - 300)) if ttl else None
        CacheEntry.insert(key=key, value=value, expires_at=expires).on_conflict(
            conflict_target=[CacheEntry.key], update={CacheEntry.value: value, CacheEntry.expires_at: expires}
        ).execute()

    def delete(self, key):
        CacheEntry.delete().where(CacheEntry.key == key).execute()


class _Client(WeChatClient):
    """WeChatClient pointed at PORTAL_WECHAT_API_BASE (WeChat itself, or the local stub)."""

    def __init__(self, base: str, appid: str, secret: str):
        super().__init__(appid, secret, session=DatabaseStorage(), timeout=TIMEOUT, auto_retry=False)
        self._http = _TimeoutSession()
        self.base = base if base.endswith("/") else base + "/"
        self.API_BASE_URL = self.base + "cgi-bin/"
        self.wxa.API_BASE_URL = self.base

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=self.base + "cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


def _client() -> _Client:
    config = current_app.config
    if not config["WECHAT_APPID"] or not config["WECHAT_SECRET"]:
        raise WeChatError(_("微信小程序未配置"), code="wechat_not_configured", status=503)
    return _Client(str(config["WECHAT_API_BASE"]), str(config["WECHAT_APPID"]), str(config["WECHAT_SECRET"]))


def code_to_session(code: str) -> WeChatSession:
    """Exchange a wx.login() code for the user's openid and session_key."""
    if not code or len(code) > 128:
        raise WeChatError(_("缺少微信登录凭证"), code="invalid_code", status=400)
    client = _client()
    for attempt in range(2):
        try:
            result = client.wxa.code_to_session(code)
        except WeChatClientException as exc:
            if exc.errcode in TOKEN_ERRORS and attempt == 0:
                client.session.delete(client.access_token_key)
                continue
            raise _mapped(exc.errcode) from exc
        except (requests.RequestException, ValueError) as exc:
            raise _mapped(None) from exc
        if not isinstance(result, dict) or not result.get("openid") or not result.get("session_key"):
            raise _mapped(None)
        return WeChatSession(client.appid, result["openid"], result.get("unionid", ""), result["session_key"])
    raise _mapped(None)


def _mapped(errcode: int | None) -> WeChatError:
    status, code, message = ERRORS.get(errcode, UNAVAILABLE) if errcode is not None else UNAVAILABLE
    if errcode is not None and errcode not in ERRORS:
        current_app.logger.warning("WeChat error %s", errcode)
    return WeChatError(str(message), code=code, status=status)
