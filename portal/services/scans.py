"""The browser's side of QR tickets: show a QR, poll it, act once the phone has decided."""

from __future__ import annotations

from dataclasses import dataclass

from portal.models import LoginSession, Ticket, User
from portal.services import backup_email, factors, login, policy, sessions, throttle, tickets
from portal.services.backup_email import EmailEnrollment
from portal.services.client import Client
from portal.services.errors import Conflict, NotAllowed, Throttled
from portal.services.factors import TotpEnrollment
from portal.services.tickets import NewTicket

SCAN_METHODS = ("wechat", "app")  # approved on a phone: by QR, and the App also by push
PUSH_OPEN_LIMIT = 3  # push challenges waiting at once per account
LABELS = {"wechat": "微信", "app": "邮箱安全 App"}
DENIED = {
    tickets.NOT_ME: "您已在 App 中选择“不是本人操作”,本次请求已取消。如非本人操作,请立即修改密码。",
    tickets.NUMBER_MISMATCH: "App 中选择的数字与网页显示的不一致,本次请求已取消,请重试。",
}


@dataclass
class Progress:
    """Where a ticket stands for its browser; ``done`` once the browser has acted on it."""

    state: str  # pending | scanned | denied | expired | consumed | done
    ticket: Ticket
    message: str = ""
    step: login.Step | None = None  # a login (or forced binding) completed: new cookies
    next: TotpEnrollment | NewTicket | None = None  # 修改: how the new factor is bound


def start_bind(session: LoginSession, user: User, method: str, client: Client) -> NewTicket:
    """绑定 by scanning (or the second half of 修改): a QR the phone confirms."""
    if method not in SCAN_METHODS or method not in policy.offered(user):
        raise NotAllowed(f"{LABELS.get(method, method)}二次验证未开通")
    replaces = factors.has_grant(session, f"change:{method}")
    if not replaces and method in factors.bound_methods(user):
        raise Conflict(f"{LABELS[method]}已绑定;如需更换请使用“修改”")
    return tickets.create(session, user, method, "bind", client, replaces=replaces)


def start_verify(
    session: LoginSession, user: User, via: str, action: str, target: str, client: Client, channel: str = "qr"
) -> NewTicket:
    """解绑 / 修改 verified on the phone of the bound ``via`` factor (QR, or push for the App)."""
    if via not in SCAN_METHODS or via not in factors.bound_methods(user):
        raise NotAllowed("该验证方式不支持扫码")
    if action == "unbind":
        factors.check_removable(user, target)
    purpose = "unbind" if action == "unbind" else "rebind"
    return _create(session, user, via, purpose, client, channel, target=target)


def start_login(session: LoginSession, method: str, client: Client, channel: str = "qr") -> NewTicket:
    """The second step on the phone: 扫码授权 (QR), or 打开 App 确认授权 (push)."""
    if session.stage != sessions.SECOND_FACTOR or method not in factors.bound_methods(session.user):
        raise NotAllowed("当前无需此验证")
    return _create(session, session.user, method, "login", client, channel)


def _create(
    session: LoginSession, user: User, method: str, purpose: str, client: Client, channel: str, target: str = ""
) -> NewTicket:
    if channel == "push":
        if method != "app":
            raise NotAllowed("该验证方式不支持推送")
        if tickets.open_pushes(user) >= PUSH_OPEN_LIMIT:
            raise Throttled("待处理的授权请求过多,请先在 App 中处理,或使用验证码", retry_after=120)
        throttle.begin("push", user.account, client.ip)  # never given back: caps pushes per window
    return tickets.create(session, user, method, purpose, client, target=target, channel=channel)


def progress(session: LoginSession, ticket_id: int, client: Client) -> Progress:
    """Poll a ticket; the first poll after approval consumes it and does what it was for."""
    ticket = tickets.of_session(session, ticket_id)
    state = tickets.state_of(ticket)
    if state == tickets.DENIED:
        return Progress(state, ticket, DENIED.get(ticket.deny_reason, "已在手机上拒绝;如非本人操作,请及时修改密码"))
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


def begin_rebind(
    session: LoginSession, user: User, target: str, client: Client
) -> TotpEnrollment | EmailEnrollment | NewTicket:
    """修改, second half: start binding the new factor (the old one stays until it is confirmed)."""
    if target == "totp":
        return factors.begin_totp(session, user)
    if target == backup_email.METHOD:
        return backup_email.begin(session, user)
    return start_bind(session, user, target, client)
