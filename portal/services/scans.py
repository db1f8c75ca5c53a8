"""The browser's side of QR tickets: show a QR, poll it, act once the phone has decided."""

from __future__ import annotations

from dataclasses import dataclass

from portal.models import LoginSession, Ticket, User
from portal.services import factors, login, policy, sessions, tickets
from portal.services.client import Client
from portal.services.errors import Conflict, NotAllowed
from portal.services.factors import TotpEnrollment
from portal.services.tickets import NewTicket

SCAN_METHODS = ("wechat",)  # methods that approve by scanning a QR


@dataclass
class Progress:
    """Where a ticket stands for its browser; ``done`` once the browser has acted on it."""

    state: str  # pending | scanned | denied | expired | consumed | done
    ticket: Ticket
    message: str = ""
    step: login.Step | None = None  # a login (or forced binding) completed: new cookies
    next: TotpEnrollment | NewTicket | None = None  # 修改: how the new factor is bound


def start_bind(session: LoginSession, user: User, client: Client) -> NewTicket:
    """绑定 微信 (or the second half of 修改 微信): a QR any WeChat user may confirm."""
    if "wechat" not in policy.offered(user):
        raise NotAllowed("微信二次验证未开通")
    replaces = factors.has_grant(session, "change:wechat")
    if not replaces and "wechat" in factors.bound_methods(user):
        raise Conflict("微信已绑定;如需更换请使用“修改”")
    return tickets.create(session, user, "wechat", "bind", client, replaces=replaces)


def start_verify(session: LoginSession, user: User, via: str, action: str, target: str, client: Client) -> NewTicket:
    """解绑 / 修改 verified by scanning with the bound ``via`` factor."""
    if via not in SCAN_METHODS or via not in factors.bound_methods(user):
        raise NotAllowed("该验证方式不支持扫码")
    if action == "unbind":
        factors.check_removable(user, target)
    return tickets.create(session, user, via, "unbind" if action == "unbind" else "rebind", client, target=target)


def start_login(session: LoginSession, client: Client) -> NewTicket:
    """The second step by scanning (扫码授权)."""
    if session.stage != sessions.SECOND_FACTOR or "wechat" not in factors.bound_methods(session.user):
        raise NotAllowed("当前无需扫码验证")
    return tickets.create(session, session.user, "wechat", "login", client)


def progress(session: LoginSession, ticket_id: int, client: Client) -> Progress:
    """Poll a ticket; the first poll after approval consumes it and does what it was for."""
    ticket = tickets.of_session(session, ticket_id)
    state = tickets.state_of(ticket)
    if state == tickets.DENIED:
        return Progress(state, ticket, "已在手机上拒绝;如非本人操作,请及时修改密码")
    if state != tickets.APPROVED:
        return Progress(state, ticket)
    if not tickets.consume(ticket):
        return Progress(tickets.CONSUMED, ticket)
    return _act(session, ticket, client)


def _act(session: LoginSession, ticket: Ticket, client: Client) -> Progress:
    user = session.user
    if ticket.purpose == "login":
        return Progress("done", ticket, "登录成功", step=login.complete_by_scan(session, ticket, client))
    if ticket.purpose == "bind":
        token = login.finish_forced_binding(session, client)
        step = login.Step(token, sessions.FULL) if token else None
        return Progress("done", ticket, "绑定成功", step=step)
    if ticket.purpose == "unbind":
        factors.check_removable(user, ticket.target)
        factors.remove(user, ticket.target, client, via=ticket.method)
        return Progress("done", ticket, "解绑成功")
    factors.grant_change(session, ticket.target)
    return Progress("done", ticket, "验证成功", next=begin_rebind(session, user, ticket.target, client))


def begin_rebind(session: LoginSession, user: User, target: str, client: Client) -> TotpEnrollment | NewTicket:
    """修改, second half: start binding the new factor (the old one stays until it is confirmed)."""
    if target == "totp":
        return factors.begin_totp(session, user)
    return start_bind(session, user, client)
