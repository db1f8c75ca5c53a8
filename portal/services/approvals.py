"""Phone approvals, the browser's side: show a QR or send a push, poll it, act once the phone has decided.

Pushes are sent sparingly: opening a page or dialog sends at most one (a reload shows the open one
again, and after one expired or was turned down nothing is sent by itself); a new push needs the
user's click, a pause since the last one, and stays under its own cap. An unanswered push is no
failed attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.db import db
from portal.models import LoginSession, Ticket, User, utcnow
from portal.services import factors, login, sessions, throttle, tickets, web_push
from portal.services.client import Client
from portal.services.errors import DomainError, NotAllowed, Throttled
from portal.services.tickets import NewTicket

PREFERRED = ("webauthn", "app", "wechat", "totp", "token", "sms", "email")  # a security key first, then the manual's
PUSH_OPEN_LIMIT = 3  # push challenges waiting at once per account
PUSH_INTERVAL = timedelta(seconds=30)  # between two pushes of one browser for one purpose
PUSHES_PER_WINDOW = (10, 30)  # per account, per IP, in each throttle window
# What the browser is told when the phone turned its request down: that it was refused, nothing more.
# (Whoever sits at this browser may be the one the owner refused; the owner is told on 欢迎页.)
REFUSED = _l("该请求已在手机上被拒绝,本次操作已取消。")
DENIED = {
    tickets.NOT_ME: REFUSED,
    tickets.NUMBER_MISMATCH: _l("App 中选择的数字与网页显示的不一致,本次请求已取消,请重试。"),
}


@dataclass
class Progress:
    """Where a ticket stands for its browser; ``done`` once the browser has acted on it."""

    state: str  # pending | scanned | denied | expired | consumed | refused | done
    ticket: Ticket
    message: str = ""
    step: login.Step | None = None  # a login (or forced binding) completed: new cookies
    next: factors.Pending | None = None  # 修改: how the new factor is bound


def preferred(usable: list[str], default: str = "") -> str:
    """The method a verification starts with (the user may switch: 更换验证方式): the user's 默认验证方式
    while it is usable, else the recommended order; 备用码 only as the last."""
    if default in usable and default != "recovery":
        return default
    order = (*PREFERRED, "recovery")
    return min(usable, key=lambda method: order.index(method) if method in order else len(order) - 1)


@dataclass
class Challenge:
    """What a verification step shows for one bound method: an App push, a QR, or a code form."""

    method: str
    mode: str  # push | qr | code
    new: NewTicket | None = None  # the push or QR to wait for (push: None until one is sent)
    error: str | None = None  # why the phone cannot be asked now (the code still works)


def challenge(
    session: LoginSession,
    user: User,
    method: str,
    mode: str,
    client: Client,
    purpose: str = "login",
    target: str = "",
    resend: bool = False,
) -> Challenge:
    """The challenge for ``method`` in ``mode`` ("" = the method's first channel: push for the App, QR for 微信)."""
    channels = factors.METHODS[method].channels if method in factors.METHODS else ("code",)
    mode = mode if mode in channels else channels[0]
    if mode not in ("push", "qr"):
        return Challenge(method, mode)
    try:
        if purpose == "login":
            new = start_login(session, method, client, mode, resend)
        else:
            new = start_verify(session, user, method, purpose, target, client, mode, resend)
    except Throttled as exc:  # pushes capped: the QR and the code still work
        return Challenge(method, "code", error=exc.message)
    return Challenge(method, mode, new)


def start_verify(
    session: LoginSession,
    user: User,
    via: str,
    purpose: str,
    target: str,
    client: Client,
    channel: str = "qr",
    resend: bool = False,
) -> NewTicket | None:
    """A fresh verification on the phone of the bound ``via`` factor, for 解绑 (unbind), 修改 (rebind)
    or a sensitive step (verify): a QR, or a push to the App (None: no push is sent by itself now)."""
    if "qr" not in factors.METHODS[via].channels or via not in factors.bound_methods(user):
        raise NotAllowed(_("该验证方式不支持扫码"))
    if purpose == "unbind":
        factors.check_removable(user, target)
    if channel == "push":
        return push(session, user, purpose, target, client, resend)
    return tickets.create(session, user, via, purpose, client, target=target)


def start_login(
    session: LoginSession, method: str, client: Client, channel: str = "qr", resend: bool = False
) -> NewTicket | None:
    """The second step on the phone: 扫码授权 (QR), or 打开 App 确认授权 (push; None: none sent by itself)."""
    if session.stage != sessions.SECOND_FACTOR or method not in factors.bound_methods(session.user):
        raise NotAllowed(_("当前无需此验证"))
    if channel == "push":
        return push(session, session.user, "login", "app", client, resend)
    return tickets.create(session, session.user, method, "login", client)


def push(
    session: LoginSession, user: User, purpose: str, target: str, client: Client, resend: bool
) -> NewTicket | None:
    """The App push for this browser and purpose: the open one again, the first one, or (``resend``,
    the user's click) a new one; None when the last one ended and nobody asked for another."""
    earlier = tickets.pushes_of(session, purpose, target).first()
    if earlier is not None and tickets.state_of(earlier) in tickets.OPEN and not resend:
        return NewTicket(earlier, "")  # a push has no QR: the token is not needed again
    if earlier is not None and not resend:
        return None
    # The pause: a click within it shows the open push again. A wrong number picked in the App is the
    # user's own slip, answered on the phone: they may try again at once.
    if earlier is not None and utcnow() - earlier.created_at < PUSH_INTERVAL:
        if tickets.state_of(earlier) in tickets.OPEN:
            return NewTicket(earlier, "")
        if earlier.deny_reason != tickets.NUMBER_MISMATCH:
            wait = int((earlier.created_at + PUSH_INTERVAL - utcnow()).total_seconds()) + 1
            raise Throttled(
                _("授权请求刚刚发送过,请 %(wait)s 秒后再重新发送", wait=wait), retry_after=wait, code="rate_limited"
            )
    if tickets.open_pushes(user).count() >= PUSH_OPEN_LIMIT:
        raise Throttled(_("待处理的授权请求过多,请先在 App 中处理,或使用验证码"), retry_after=120, code="rate_limited")
    throttle.spend("push", user.account, client.ip, *PUSHES_PER_WINDOW, what=_("发送授权请求"))
    new = tickets.create(session, user, "app", purpose, client, target=target, channel="push")
    web_push.notify(new.ticket)  # queued: the request does not wait for the push service
    return new


def progress(session: LoginSession, ticket_id: int, client: Client) -> Progress:
    """Poll a ticket; the first poll after approval consumes it and does what it was for.

    Consuming and acting are one transaction: a failure on the way leaves the approval unused.
    """
    ticket = tickets.of_session(session, ticket_id)
    state = tickets.state_of(ticket)
    if state == tickets.DENIED:
        return Progress(state, ticket, str(DENIED.get(ticket.deny_reason, REFUSED)))
    if state != tickets.APPROVED:
        return Progress(state, ticket)
    try:
        with db.atomic():
            if not tickets.consume(ticket):
                return Progress(tickets.CONSUMED, ticket)
            return _act(session, ticket, client)
    except DomainError as exc:  # locked, logged out or no longer allowed since the phone approved
        if exc.status >= 500:
            raise
        return Progress("refused", ticket, exc.message)


def _logged_in(session: LoginSession, ticket: Ticket, client: Client) -> Progress:
    return Progress("done", ticket, _("登录成功"), step=login.complete_by_scan(session, ticket, client))


def _bound(session: LoginSession, ticket: Ticket, client: Client) -> Progress:
    """The phone stored the factor when it confirmed; a forced binding ends here."""
    token = login.finish_forced_binding(session, client)
    return Progress("done", ticket, _("绑定成功"), step=login.Step(token, sessions.FULL) if token else None)


def _unbound(session: LoginSession, ticket: Ticket, client: Client) -> Progress:
    factors.check_removable(session.user, ticket.target)
    factors.remove(session.user, ticket.target, client, ticket.method, session)
    return Progress("done", ticket, _("解绑成功"))


def _verified(session: LoginSession, ticket: Ticket, client: Client) -> Progress:
    """安全验证 (step-up): the session counts as freshly verified."""
    sessions.mark_verified(session, ticket.method)
    return Progress("done", ticket, _("验证成功"))


def _change_allowed(session: LoginSession, ticket: Ticket, client: Client) -> Progress:
    """修改, first half verified on the phone: the bind dialog of the new factor comes next."""
    sessions.mark_verified(session, ticket.method)
    factors.grant_change(session, ticket.target)
    bind = factors.begin_bind(session, session.user, ticket.target, client)
    return Progress("done", ticket, _("验证成功"), next=bind)


# What an approved ticket does for its browser, by purpose.
HANDLERS = {"login": _logged_in, "bind": _bound, "unbind": _unbound, "verify": _verified, "rebind": _change_allowed}


def _act(session: LoginSession, ticket: Ticket, client: Client) -> Progress:
    return HANDLERS[ticket.purpose](session, ticket, client)
