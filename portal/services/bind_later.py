"""稍后绑定: a user forced to bind a second factor may put it off a few times, until the policy's deadline.

Policy force_2fa_snoozes says how many times (0 = never), force_2fa_deadline (a date, Beijing time) until
when: through the end of that day; with no deadline, only the number limits it. Staff never put it off.
Each 稍后绑定 is counted by a conditional UPDATE (two browsers cannot both take the last one) and lets
this session in without a second factor, as if the account were not forced; the next login asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask_babel import gettext as _

from portal.db import db
from portal.models import Factor, LoginSession, User, utcnow
from portal.services import audit, new_sign_ins, policy, sessions
from portal.services.client import Client
from portal.services.errors import Conflict, NotAllowed
from portal.timezone import LOCAL

DETAIL = "binding snoozed"  # login_complete's detail (activity: 稍后绑定)


@dataclass(frozen=True)
class Offer:
    left: int  # times the user may still choose 稍后绑定, this one included
    deadline: str  # YYYY-MM-DD (Beijing time), "" = none


def deadline_end() -> datetime | None:
    """The end of the deadline day in Beijing, as naive UTC (as times are stored); None without a deadline."""
    raw = policy.get("force_2fa_deadline")
    if not raw:
        return None
    midnight = datetime.combine(date.fromisoformat(raw) + timedelta(days=1), time(), tzinfo=LOCAL)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def offer(user: User, now: datetime | None = None) -> Offer | None:
    """Whether ``user`` (forced, nothing bound) may choose 稍后绑定 now, and how many times more.

    Never for staff, nor for an account with a factor bound: its binding session is a 临时访问码 login,
    which becomes full only by binding (a snooze would make the code a way around the second step)."""
    if user.is_staff or Factor.select().where(Factor.user == user).exists():
        return None
    left = policy.number("force_2fa_snoozes") - user.bind_snoozes_used
    end = deadline_end()
    if left <= 0 or (end is not None and (now or utcnow()) >= end):
        return None
    return Offer(left, policy.get("force_2fa_deadline"))


def snooze(session: LoginSession, client: Client) -> str:
    """Count one 稍后绑定 and let this forced-binding session in; returns the new session token."""
    user = session.user
    if session.stage != sessions.BINDING:
        raise Conflict(_("无需绑定"), code="not_binding")
    if offer(user) is None:
        raise NotAllowed(_("已不能稍后绑定,请先完成二次验证绑定"), code="bind_required")
    allowed = policy.number("force_2fa_snoozes")
    with db.atomic():
        counted = (
            User.update(bind_snoozes_used=User.bind_snoozes_used + 1)
            .where((User.id == user.id) & (User.bind_snoozes_used < allowed) & (User.role == ""))
            .execute()
        )
        if counted != 1:  # another browser took the last one meanwhile
            raise NotAllowed(_("已不能稍后绑定,请先完成二次验证绑定"), code="bind_required")
        used = User.get_by_id(user.id).bind_snoozes_used
        token = sessions.advance(session, sessions.BINDING, sessions.FULL, "", proved=False)
        audit.record("binding_snoozed", user=user, client=client, detail=f"{used}/{allowed}")
        audit.record("login_complete", user=user, client=client, detail=DETAIL)
        new_sign_ins.observe(user, client)
    user.bind_snoozes_used = used
    return token
