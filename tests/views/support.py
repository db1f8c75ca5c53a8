"""Helpers for view tests: a controllable TOTP clock, redirects, a complete login."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

from portal.models import Factor
from portal.services import otp
from tests.conftest import PASSWORD
from tests.helpers import Browser, attr, text

REDIRECTS = (301, 302, 303, 307, 308)
PAGE = "/settings/security/2fa"
BIND = f"{PAGE}/totp/bind"
CSRF_VALUE_RE = re.compile(r'(csrf_token" value="|"X-CSRFToken": ")[^"]+')


class TotpClock:
    """The TOTP time step the portal sees, moved on by hand so that codes never collide."""

    def __init__(self):
        self.step = otp.current_step()

    def next_code(self, secret: str) -> str:
        """A valid code from a time step no code of this test has used yet."""
        self.step += 1
        return otp.code_at(secret, self.step)

    def wrong_code(self, secret: str) -> str:
        near = {otp.code_at(secret, self.step + d) for d in range(-2, 3)}
        return next(c for c in (f"{n:06d}" for n in range(1, 1000)) if c not in near)


def location(response) -> str:
    """Where a redirect (or an htmx HX-Redirect) sends the browser: the path only."""
    target = response.headers.get("HX-Redirect") or response.headers.get("Location") or ""
    return urlsplit(target).path


def complete_login(browser: Browser, account: str, secret: str, clock: TotpClock, trust: bool = False):
    """Password, then a fresh 第三方 OTP code; returns the second step's response."""
    response = browser.login(account, PASSWORD)
    assert location(response) == "/login/verify", response.status_code
    form = {"method": "totp", "code": clock.next_code(secret)}
    if trust:
        form["trust"] = "1"
    response = browser.post("/login/verify", form)
    assert location(response) == "/", response.get_data(as_text=True)
    return response


def factor_count(user, method: str = "totp") -> int:
    return Factor.select().where((Factor.user == user) & (Factor.method == method)).count()


def without_csrf(body: str) -> str:
    """A page with its (per-request, time-stamped) CSRF tokens blanked, to compare page shapes."""
    return CSRF_VALUE_RE.sub(r"\1", body)


# --- 二次验证设置 dialogs ---


def rows(response) -> dict[str, str]:
    """The methods table: method key → that row's HTML."""
    body = text(response)
    return dict(re.findall(r'<tr data-method="(\w+)">(.*?)</tr>', body, re.S))


def dialog_secret(response) -> str:
    uri = html.unescape(attr(response, "data-otpauth-uri"))
    return parse_qs(urlsplit(uri).query)["secret"][0]


def dialog_tag(response) -> str:
    """The opening <dialog ...> tag (open: shown without JavaScript)."""
    return "<dialog" + text(response).split("<dialog", 1)[1].split(">", 1)[0] + ">"


def is_fragment(response) -> bool:
    return "<html" not in text(response) and "<body" not in text(response)


def enrollment_of(dialog) -> str:
    return attr(dialog, 'name="enrollment" value')


def confirm(browser, dialog, code: str, htmx: bool = True):
    """Submit a code in a bind dialog."""
    return browser.post(BIND, {"enrollment": enrollment_of(dialog), "code": code}, htmx=htmx)


def bind(browser, clock, dialog=None) -> str:
    """Bind 第三方 OTP through the (given or a new) bind dialog; returns the new secret."""
    dialog = dialog or browser.get(BIND, htmx=True)
    secret = dialog_secret(dialog)
    response = confirm(browser, dialog, clock.next_code(secret))
    assert "绑定成功" in text(response), text(response)
    return secret
