"""微信 view tests: the WeChat stub over HTTP, the mini-program (``Phone``), and the web's QR dialogs.

Test modules take the fixtures with ``from tests.views.wechat_support import *`` (only the fixtures
are exported that way; helpers are imported by name). The browser is the Flask test client; the
phone drives /api/wx/v1 of the same app and signs in through the stub served over real HTTP.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from portal import crypto
from portal.models import Factor, Ticket, utcnow
from tests.api.support import STUB_APPID, STUB_SECRET, Phone, wechat_stub  # noqa: F401 -- a fixture
from tests.conftest import PASSWORD
from tests.helpers import Browser, text
from tests.views.support import PAGE, location

__all__ = ["app_config", "phone", "wechat_stub"]

PUBLIC_URL = "http://127.0.0.1:8000"  # tests.conftest.make_config
VERIFY = "/login/verify"
WX_BIND = f"{PAGE}/wechat/bind"
QR_URL_RE = re.compile(r'data-qr-url="([^"]+)"')
STATUS_RE = re.compile(r'<p class="scan-status" id="scan-status-(\d+)"[^>]*>', re.S)


@pytest.fixture
def app_config(app_config, wechat_stub) -> dict:
    """The portal calls the stub through wechatpy over real HTTP (``app_config`` markers still apply)."""
    app_config.update(WECHAT_APPID=STUB_APPID, WECHAT_SECRET=STUB_SECRET, WECHAT_API_BASE=wechat_stub.base)
    return app_config


@pytest.fixture
def phone(app, wechat_stub) -> Phone:
    """The 邮箱安全助手 mini-program; ``phone.login(openid)`` is one WeChat user's bearer token."""
    return Phone(app.test_client(), wechat_stub)


# --- what the web page shows ------------------------------------------------------------------


def qr_url(response) -> str:
    """The URL the (only or first) QR of a page or fragment encodes."""
    match = QR_URL_RE.search(text(response))
    assert match, f"no QR in: {text(response)[:2000]}"
    return html.unescape(match.group(1))


def qr_token(response) -> str:
    """The ticket a WeChat QR names: <PUBLIC_URL>/wx/t/<ticket>."""
    url = qr_url(response)
    prefix = f"{PUBLIC_URL}/wx/t/"
    assert url.startswith(prefix), url
    return url[len(prefix) :]


def ticket_of(token: str) -> Ticket:
    return Ticket.get(Ticket.token_hash == crypto.token_hash(token))


def expire(token: str) -> None:
    """Let the ticket of this QR run out (its expires_at in the past)."""
    Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).where(Ticket.id == ticket_of(token).id).execute()


def status_tag(response) -> str:
    """The opening tag of the polling status element."""
    match = STATUS_RE.search(text(response))
    assert match, f"no scan status in: {text(response)[:2000]}"
    return match.group(0)


def poll_url(response) -> str:
    """Where the status element polls (its hx-get)."""
    match = re.search(r'hx-get="([^"]+)"', status_tag(response))
    assert match
    return html.unescape(match.group(1))


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def redirect_target(response) -> str:
    """The full target (path and query) of a redirect or an HX-Redirect."""
    target = response.headers.get("HX-Redirect") or response.headers.get("Location") or ""
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- the phone --------------------------------------------------------------------------------


def wx_code(phone: Phone, bearer: str, account: str, clock=None) -> str:
    """The 6-digit code the mini-program shows for ``account`` (after the clock moved on a step)."""
    if clock is not None:
        clock.step += 1  # a code of a time step no earlier code of the test used
    codes = {row["account"]: row["code"] for row in phone.accounts(bearer)}
    assert account in codes, codes
    return codes[account]


def wechat_factor(user) -> Factor | None:
    return Factor.get_or_none((Factor.user == user) & (Factor.method == "wechat"))


# --- the browser ------------------------------------------------------------------------------


def password_step(browser: Browser, account: str) -> None:
    """The account + password; the browser is at the second step."""
    assert location(browser.login(account, PASSWORD)) == VERIFY


def login_by_code(browser: Browser, user, phone: Phone, bearer: str, clock, trust: bool = False):
    """Password, then the mini-program's code at /login/verify; returns the second step's response."""
    password_step(browser, user.account)
    form = {"method": "wechat", "code": wx_code(phone, bearer, user.account, clock)}
    if trust:
        form["trust"] = "1"
    response = browser.post(VERIFY, form)
    assert location(response) == "/", text(response)
    return response


def bind_wechat(browser: Browser, phone: Phone, bearer: str, htmx: bool = True):
    """绑定 微信 in ``browser`` (a full session), confirmed by the phone of ``bearer``; the final poll."""
    dialog = browser.get(WX_BIND, htmx=htmx)
    assert phone.confirm(bearer, qr_token(dialog)).status_code == 200
    done = browser.get(poll_url(dialog), htmx=htmx)
    assert "绑定成功" in text(done), text(done)
    return done
