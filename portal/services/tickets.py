"""QR tickets: a browser asks, a phone (WeChat mini-program or App) decides, the browser consumes.

A ticket is bound to the browser session that created it, to its purpose and its account.
Every state change is one conditional UPDATE, so a ticket is decided and consumed at most once,
whichever worker or host handles the request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _

from portal import crypto
from portal.models import LoginSession, Ticket, User, utcnow
from portal.services import audit, sessions, throttle, useragent
from portal.services.client import Client
from portal.services.errors import Conflict, Expired, NotFound, Throttled
from portal.timezone import local_clock

PENDING, SCANNED, APPROVED, DENIED, CONSUMED = "pending", "scanned", "approved", "denied", "consumed"
# Why the App denied a push (Ticket.deny_reason): 不是本人操作, the wrong number picked, or 取消授权.
NOT_ME, NUMBER_MISMATCH, DECLINED = "not_me", "number_mismatch", "declined"
EXPIRED = "expired"  # shown, never stored: a ticket past expires_at is expired whatever its state
PURPOSES = ("bind", "login", "unbind", "rebind", "verify")  # verify: a fresh proof before a sensitive step
TTL = {
    "login": timedelta(minutes=2),
    "bind": timedelta(minutes=5),
    "unbind": timedelta(minutes=2),
    "rebind": timedelta(minutes=2),
    "verify": timedelta(minutes=2),
}
OPEN = (PENDING, SCANNED)


@dataclass
class NewTicket:
    ticket: Ticket
    token: str

    @property
    def url(self) -> str:
        return scan_url(self.token, self.ticket.method, self.ticket.purpose)


def scan_url(token: str, method: str = "wechat", purpose: str = "login") -> str:
    """What the QR encodes: WeChat opens the mini-program for this ordinary link; the App
    enrolls from /app/enroll/<t> and approves from /app/t/<t>."""
    base = str(current_app.config["PUBLIC_URL"]).rstrip("/")
    if method == "app":
        return f"{base}/app/{'enroll' if purpose == 'bind' else 't'}/{token}"
    return f"{base}/wx/t/{token}"


def create(
    session: LoginSession,
    user: User,
    method: str,
    purpose: str,
    client: Client,
    target: str = "",
    replaces: bool = False,
    channel: str = "qr",
) -> NewTicket:
    """A new ticket for this browser session; earlier open tickets of the same kind are dropped.

    A push (channel "push") carries the number the user must pick in the App among three.
    """
    assert purpose in PURPOSES and channel in ("qr", "push")
    Ticket.delete().where(
        (Ticket.session == session) & (Ticket.method == method) & (Ticket.purpose == purpose) & Ticket.state.in_(OPEN)
    ).execute()
    match_number, choices = _number_match() if channel == "push" else (0, "")
    token = crypto.new_token(24)  # 192 bits
    ticket = Ticket.create(
        token_hash=crypto.token_hash(token),
        method=method,
        purpose=purpose,
        target=target or method,
        user=user,
        session=session,
        replaces=replaces,
        channel=channel,
        match_number=match_number,
        choices=choices,
        ip=client.ip,
        user_agent=client.user_agent,
        expires_at=utcnow() + TTL[purpose],
    )
    return NewTicket(ticket, token)


def _number_match() -> tuple[int, str]:
    """The number shown in the browser and the three (shuffled, distinct) offered in the App."""
    numbers: list[int] = []
    while len(numbers) < 3:
        candidate = 10 + secrets.randbelow(90)
        if candidate not in numbers:
            numbers.append(candidate)
    answer = numbers[0]
    shuffled = sorted(numbers, key=lambda _: secrets.randbelow(1000))
    return answer, ",".join(str(n) for n in shuffled)


def open_pushes(user: User | int):
    """Push challenges of this user still waiting for the App (a query, newest first)."""
    return (
        Ticket.select()
        .join(LoginSession)
        .where(
            (Ticket.user == user)
            & (Ticket.channel == "push")
            & Ticket.state.in_(OPEN)
            & (Ticket.expires_at > utcnow())
            & LoginSession.ended_at.is_null()  # a browser that logged out waits for nothing
        )
        .order_by(Ticket.id.desc())
    )


def pushes_of(session: LoginSession, purpose: str, target: str):
    """This browser session's pushes for one purpose (any state), newest first."""
    return (
        Ticket.select()
        .where(
            (Ticket.session == session)
            & (Ticket.channel == "push")
            & (Ticket.purpose == purpose)
            & (Ticket.target == target)
        )
        .order_by(Ticket.id.desc())
    )


def by_token(token: str, method: str) -> Ticket:
    """The ticket a scanned QR names; unknown and expired tickets are refused."""
    if not token or len(token) > 128:
        raise NotFound(_("二维码无效"), code="ticket_not_found")
    ticket = Ticket.get_or_none((Ticket.token_hash == crypto.token_hash(token)) & (Ticket.method == method))
    if ticket is None:
        raise NotFound(_("二维码无效"), code="ticket_not_found")
    if state_of(ticket) == EXPIRED:
        raise Expired(_("二维码已过期,请在网页上刷新二维码"), code="ticket_expired")
    return ticket


def of_session(session: LoginSession, ticket_id: int) -> Ticket:
    """A ticket as its own browser sees it (another browser's ticket does not exist for it)."""
    ticket = Ticket.get_or_none((Ticket.id == ticket_id) & (Ticket.session == session))
    if ticket is None:
        raise NotFound(_("二维码不存在,请重新操作"), code="ticket_not_found")
    return ticket


def state_of(ticket: Ticket) -> str:
    if ticket.state in OPEN and ticket.expires_at <= utcnow():
        return EXPIRED
    return ticket.state


def mark_scanned(ticket: Ticket) -> None:
    Ticket.update(state=SCANNED).where((Ticket.id == ticket.id) & (Ticket.state == PENDING)).execute()
    ticket.state = SCANNED if ticket.state == PENDING else ticket.state


def require_live_session(ticket: Ticket) -> None:
    """The browser that made the ticket is still logged in (not out, timed out or disabled)."""
    if not sessions.is_live(ticket.session):
        raise Conflict(_("网页已退出登录或登录已超时,请在网页上重新操作"), code="session_ended")


def check_open(ticket: Ticket) -> None:
    """Invariant 13: a ticket completes only while its browser and account may still get in.

    Consulted when the phone approves and again when the browser acts on the approval: the
    browser's session is live, the account is enabled, and its second step is not locked (for the
    account, or for the browser's IP) by too many wrong codes.
    """
    require_live_session(ticket)
    now = utcnow()
    until = throttle.locked_until("otp", ticket.user.account, ticket.ip, now)
    if until is not None:
        message = _("该帐号验证失败次数过多,已临时锁定,请于 %(when)s 后再试", when=local_clock(until, now))
        raise Throttled(message, retry_after=int((until - now).total_seconds()), code="account_locked")


def decide(ticket: Ticket, approver: str, approve: bool, trust_device: bool = False, deny_reason: str = "") -> None:
    """pending|scanned → approved|denied, once; losers of a race get Conflict. Approving checks ``check_open``."""
    if approve:
        check_open(ticket)
    now = utcnow()
    changed = (
        Ticket.update(
            state=APPROVED if approve else DENIED,
            approver=approver,
            trust_device=bool(trust_device and approve),
            deny_reason="" if approve else deny_reason,
            decided_at=now,
        )
        .where((Ticket.id == ticket.id) & Ticket.state.in_(OPEN) & (Ticket.expires_at > now))
        .execute()
    )
    if changed != 1:
        raise Conflict(_("该二维码已处理"), code="ticket_used")
    ticket.state, ticket.approver = (APPROVED if approve else DENIED), approver
    ticket.trust_device, ticket.deny_reason = bool(trust_device and approve), "" if approve else deny_reason


def consume(ticket: Ticket) -> bool:
    """approved → consumed by the browser that created it; True for exactly one caller.

    Checks ``check_open`` first: a lock or a disabled account since the approval stops it here too.
    """
    check_open(ticket)
    return Ticket.update(state=CONSUMED).where((Ticket.id == ticket.id) & (Ticket.state == APPROVED)).execute() == 1


def record(ticket: Ticket, event: str, outcome: str, client: Client | None = None, detail: str = "") -> None:
    audit.record(event, user=ticket.user, method=ticket.method, outcome=outcome, client=client, detail=detail)


def expires_in(ticket: Ticket) -> int:
    return max(0, int((ticket.expires_at - utcnow()).total_seconds()))


def describe(ticket: Ticket) -> dict:
    """The requesting browser as a person would recognise it (both phone APIs send this): IP, browser,
    OS and when, in ISO 8601 UTC."""
    browser, system = useragent.describe(ticket.user_agent)
    return {"ip": ticket.ip, "browser": browser, "os": system, "time": ticket.created_at.isoformat() + "Z"}
