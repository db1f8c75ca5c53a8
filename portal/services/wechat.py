"""The 邮箱安全助手 mini-program's side: sign-in, codes, and deciding scanned QR tickets."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask_babel import gettext as _

from portal import crypto
from portal.db import db
from portal.models import ApiToken, Factor, Ticket, WeChatUser, utcnow
from portal.services import factors, otp, tickets, trust
from portal.services.accounts import mask
from portal.services.client import Client
from portal.services.errors import InvalidCredentials, InvalidInput, NotAllowed, SecretUnreadable

log = logging.getLogger(__name__)

TOKEN_TTL = timedelta(hours=2)
METHOD = "wechat"
CHOICES = {
    "login": ["approve_trust", "approve_once", "deny"],  # 确认授权并信任此设备 / 临时登录 / 拒绝
    "bind": ["confirm", "deny"],
    "unbind": ["confirm", "deny"],
    "rebind": ["confirm", "deny"],
    "verify": ["confirm", "deny"],  # a fresh verification before a sensitive step (e.g. 生成专用密码)
}


def sign_in(appid: str, openid: str, unionid: str, session_key: str) -> tuple[str, int]:
    """After code2session: remember the WeChat user of this mini-program, issue an opaque bearer token."""
    if not openid:
        raise InvalidInput(_("微信登录失败"), code="invalid_code")
    now = utcnow()
    with db.atomic():
        WeChatUser.insert(
            appid=appid, openid=openid, unionid=unionid, session_key=crypto.encrypt(session_key)
        ).on_conflict(
            conflict_target=[WeChatUser.appid, WeChatUser.openid],
            update={WeChatUser.session_key: crypto.encrypt(session_key), WeChatUser.last_login_at: now},
        ).execute()
        wx_user = WeChatUser.get((WeChatUser.appid == appid) & (WeChatUser.openid == openid))
        token = crypto.new_token()
        ApiToken.create(token_hash=crypto.token_hash(token), wechat_user=wx_user, expires_at=now + TOKEN_TTL)
    return token, int(TOKEN_TTL.total_seconds())


def authenticate(bearer: str | None) -> WeChatUser:
    """The WeChat user behind a live bearer token, else 401."""
    if not bearer or len(bearer) > 128:
        raise InvalidCredentials(_("请重新登录小程序"), code="invalid_token")
    row = (
        ApiToken.select(ApiToken, WeChatUser)
        .join(WeChatUser)
        .where((ApiToken.token_hash == crypto.token_hash(bearer)) & (ApiToken.expires_at > utcnow()))
        .first()
    )
    if row is None:
        raise InvalidCredentials(_("请重新登录小程序"), code="invalid_token")
    return row.wechat_user


def accounts(wx_user: WeChatUser, now: float | None = None) -> list[dict]:
    """Every mail account bound to this WeChat user, with its current 6-digit code."""
    now = time.time() if now is None else now
    step, remaining = otp.current_step(now), otp.PERIOD - int(now % otp.PERIOD)
    rows = []
    for factor in _bound(wx_user).order_by(Factor.created_at):
        try:
            code = otp.code_at(crypto.decrypt(factor.secret), step)
        except SecretUnreadable:  # fail closed for this account only; the others still show their codes
            log.error("WeChat factor %s: secret unreadable with this PORTAL_DATA_KEY", factor.id)
            continue
        rows.append(
            {
                "id": factor.id,
                "account": factor.user.account,
                "code": code,
                "period": otp.PERIOD,
                "remaining": remaining,
            }
        )
    return rows


def preview(wx_user: WeChatUser, token: str) -> dict:
    """What the phone shows after scanning: purpose, masked account, the requesting browser."""
    ticket = _ticket_for(wx_user, token)
    tickets.mark_scanned(ticket)
    return {
        "purpose": ticket.purpose,
        "account": mask(ticket.user.account),
        "request": tickets.describe(ticket),
        "expires_in": tickets.expires_in(ticket),
        "choices": [c for c in CHOICES[ticket.purpose] if c != "approve_trust" or trust.allowed(ticket.user)],
    }


def confirm(wx_user: WeChatUser, token: str, client: Client | None = None) -> dict:
    """确认 for bind / unbind / rebind / verify tickets. A bind stores the new factor at once."""
    ticket = _ticket_for(wx_user, token)
    if ticket.purpose == "login":
        raise InvalidInput(_("登录请求请选择授权方式"), code="wrong_purpose")
    if ticket.purpose == "bind":
        _bind(ticket, wx_user, client)
    else:
        tickets.decide(ticket, wx_user.openid, approve=True)
    tickets.record(ticket, f"wechat_{ticket.purpose}_confirmed", "ok", client, detail=f"openid={mask(wx_user.openid)}")
    return {"state": ticket.state, "purpose": ticket.purpose}


def approve(wx_user: WeChatUser, token: str, trust_device: bool, client: Client | None = None) -> dict:
    """确认授权并信任此设备 (trust_device) or 临时登录, for login tickets."""
    ticket = _ticket_for(wx_user, token)
    if ticket.purpose != "login":
        raise InvalidInput(_("该二维码不是登录请求"), code="wrong_purpose")
    tickets.decide(ticket, wx_user.openid, approve=True, trust_device=trust_device)
    tickets.record(ticket, "wechat_login_approved", "ok", client, detail="trust" if trust_device else "once")
    return {"state": ticket.state, "purpose": ticket.purpose}


def deny(wx_user: WeChatUser, token: str, client: Client | None = None) -> dict:
    ticket = _ticket_for(wx_user, token)
    tickets.decide(ticket, wx_user.openid, approve=False, deny_reason=tickets.DECLINED)
    tickets.record(ticket, f"wechat_{ticket.purpose}_denied", "denied", client)
    return {"state": ticket.state, "purpose": ticket.purpose}


def _bound(wx_user: WeChatUser):
    """The WeChat factors this WeChat user holds (of this mini-program)."""
    return Factor.holding(METHOD, wx_user.binding_id)


def _ticket_for(wx_user: WeChatUser, token: str) -> Ticket:
    """Only the WeChat user bound to the account may see or decide its non-bind tickets."""
    ticket = tickets.by_token(token, METHOD)
    if ticket.purpose != "bind" and not _bound(wx_user).where(Factor.user == ticket.user_id).exists():
        raise NotAllowed(_("该帐号未绑定当前微信"), code="not_bound_to_you")
    tickets.require_live_session(ticket)
    return ticket


def _bind(ticket: Ticket, wx_user: WeChatUser, client: Client | None) -> None:
    """Approve a bind ticket and store the factor in one transaction (修改 replaces the old one)."""
    factors.commit_scanned_binding(
        ticket,
        wx_user.openid,
        client,
        label=mask(wx_user.openid),  # WeChat.describe names it: 微信用户 o1***
        external_id=wx_user.binding_id,
        secret=crypto.encrypt(otp.new_secret()),
    )
