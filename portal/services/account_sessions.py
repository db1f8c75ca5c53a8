"""登录设备: where an account is signed in (browsers, the mini-program, 邮箱安全 App, single sign-on), and
ending browser sessions.

Ending a browser session is ``sessions.end`` / ``sessions.end_all``: the session's next request is
refused (``sessions.resolve``), and the single sign-on tokens issued in it stop holding
(``tokens.session_holds``); they are revoked outright as well. The App and the mini-program rest on a
bound factor: they go by 解绑 in 二次验证设置, which asks for a fresh verification (invariant 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l

from portal.models import ApiToken, Device, Factor, LoginSession, OAuthToken, User, WeChatUser, utcnow
from portal.oidc import tokens
from portal.services import audit, sessions, useragent
from portal.services.client import Client
from portal.services.errors import NotFound

NOT_FOUND = _l("该登录设备不存在或已退出")


@dataclass(frozen=True)
class BrowserSession:
    id: int
    browser: str
    system: str
    user_agent: str
    ip: str
    started: datetime
    last_seen: datetime
    current: bool


@dataclass(frozen=True)
class MiniProgramLogin:
    bound_at: datetime
    last_login: datetime


@dataclass(frozen=True)
class SsoGrant:
    client: str
    last_issued: datetime
    browsers: tuple[str, ...]  # the browser sessions it rests on ("Chrome 120 · Windows")


@dataclass(frozen=True)
class Overview:
    browsers: list[BrowserSession]
    mini_program: list[MiniProgramLogin]
    app_devices: list[Device]
    sso: list[SsoGrant]


def overview(current: LoginSession) -> Overview:
    """Everything the 登录设备 page lists for the user of ``current``."""
    user = current.user
    browsers = live_browsers(current)
    return Overview(browsers, mini_program(user), app_devices(user), sso_grants(user, browsers))


def live_browsers(current: LoginSession) -> list[BrowserSession]:
    """The user's fully logged-in, live browser sessions, the current one first, then the most recent."""
    candidates = (
        LoginSession.select(LoginSession, User)
        .join(User)
        .where(
            (LoginSession.user == current.user)
            & LoginSession.ended_at.is_null()
            & (LoginSession.stage == sessions.FULL)
        )
        .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())
    )
    rows = [_browser(row, row.id == current.id) for row in candidates if sessions.is_live(row)]
    return sorted(rows, key=lambda row: not row.current)


def _browser(row: LoginSession, current: bool) -> BrowserSession:
    browser, system = useragent.describe(row.user_agent)
    return BrowserSession(row.id, browser, system, row.user_agent, row.ip, row.created_at, row.last_seen_at, current)


def mini_program(user: User) -> list[MiniProgramLogin]:
    """The 邮箱安全助手 mini-program users bound to this account (Factor ``appid:openid``) that hold a live token."""
    logins = []
    for factor in Factor.select().where((Factor.user == user) & (Factor.method == "wechat")):
        holder = WeChatUser.of_binding(factor.external_id)
        if holder is None:
            continue
        live = ApiToken.select().where((ApiToken.wechat_user == holder) & (ApiToken.expires_at > utcnow()))
        if live.exists():
            logins.append(MiniProgramLogin(factor.created_at, holder.last_login_at))
    return logins


def app_devices(user: User) -> list[Device]:
    """The 邮箱安全 App devices that act for this user (a bound App factor names them)."""
    bound = Factor.select(Factor.external_id).where((Factor.user == user) & (Factor.method == "app"))
    return list(
        Device.select().where((Device.user == user) & Device.device_id.in_(bound)).order_by(Device.last_seen_at.desc())
    )


def sso_grants(user: User, browsers: list[BrowserSession]) -> list[SsoGrant]:
    """Single sign-on clients holding an active token of this user, one per client, most recent first."""
    live = {row.id: f"{row.browser} · {row.system}" for row in browsers}
    rows = (
        tokens.with_parties()
        .where((OAuthToken.user == user) & OAuthToken.revoked_at.is_null() & OAuthToken.session.in_(list(live)))
        .order_by(OAuthToken.created_at.desc())
    )
    grants: dict[int, tuple[str, datetime, list[str]]] = {}
    for row in rows:
        if not (tokens.is_active(row) or tokens.is_active(row, "refresh")):
            continue
        name, issued, where = grants.setdefault(row.client_id, (row.client.name, row.created_at, []))
        if live[row.session_id] not in where:
            where.append(live[row.session_id])
    return [SsoGrant(name, issued, tuple(where)) for name, issued, where in grants.values()]


def end_one(current: LoginSession, session_id: int, client: Client) -> bool:
    """退出 one live session of the user of ``current``; True if it was ``current`` itself (a logout).

    Another user's session, an ended one or an unknown id: NotFound, and nothing changes.
    """
    target = (
        LoginSession.select(LoginSession, User)
        .join(User)
        .where((LoginSession.id == session_id) & (LoginSession.user == current.user) & LoginSession.ended_at.is_null())
        .first()
    )
    if target is None or not sessions.is_live(target):
        raise NotFound(NOT_FOUND)
    sessions.end(target, "ended_by_user")
    tokens.revoke_session(target)
    is_current = target.id == current.id
    detail = f"id={target.id}" + (" (this session)" if is_current else "")
    audit.record("session_ended_by_user", user=current.user, client=client, detail=detail)
    return is_current


def end_others(current: LoginSession, client: Client) -> int:
    """退出其他所有设备: every other session of the user (half-logged-in ones too) and their SSO tokens."""
    count = sessions.end_all(current.user, "ended_by_user", keep=current)
    tokens.revoke_user(current.user, keep=current)
    audit.record("other_sessions_ended", user=current.user, client=client, detail=f"count={count}")
    return count
