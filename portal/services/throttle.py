"""Failure throttling and rate caps per account and per client IP, kept in the database.

An attempt first reserves a slot with an atomic conditional increment
(``failures = failures + 1 WHERE failures < limit``); a success gives the slot
back. Parallel guesses can therefore never exceed the limit, and a locked
counter is refused before any password or code is evaluated, so a lockout
cannot be used as an oracle nor extended: it ends with its window.

Caps (``spend``) use the same counters for things that are not guesses, such as App pushes and
mailed codes: their slots are never given back, and reaching a cap is no lockout.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import ngettext

from portal.models import ThrottleCounter, User, utcnow
from portal.services import audit, policy
from portal.services.client import Client
from portal.services.errors import DomainError, Throttled
from portal.timezone import local_clock

EPOCH = datetime(1970, 1, 1)
WARN_BELOW = 3  # after a failure, tell how many tries are left once this few remain


@dataclass
class Attempt:
    """Slots reserved for one attempt; ``succeeded`` hands them back.

    Used as a context manager, it also hands them back when the server fails during the attempt
    (an error of status 5xx or an unexpected exception): that is no failure of the person trying.
    """

    slots: list[tuple[str, str, datetime, int]] = field(default_factory=list)  # scope, key, window, limit

    def succeeded(self) -> None:
        for scope, key, window, _limit in self.slots:
            _bump(scope, key, window, -1)
        self.slots.clear()

    def tries_left(self) -> int:
        """Failures still allowed in this window after this one (the tightest of account and IP)."""
        left = [limit - _count(scope, key, window) for scope, key, window, limit in self.slots]
        return max(0, min(left)) if left else 0

    def warning(self) -> str:
        """What to add to a failure's message: the tries left once few remain, or until when it is locked."""
        left = self.tries_left() if self.slots else WARN_BELOW + 1
        if left == 0:
            return _(";已达尝试上限,请于 %(time)s 后再试", time=_lock_end())
        return ngettext(",还可尝试 %(num)s 次", ",还可尝试 %(num)s 次", left) if left <= WARN_BELOW else ""

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if exc is not None and (not isinstance(exc, DomainError) or exc.status >= 500):
            with suppress(Exception):  # the database may be what failed; the original error matters
                self.succeeded()


def _bump(scope: str, key: str, window: datetime, delta: int, limit: int | None = None) -> int:
    """Atomically add ``delta`` to one counter (only while below ``limit``); rows changed."""
    query = ThrottleCounter.update(failures=ThrottleCounter.failures + delta).where(
        (ThrottleCounter.scope == scope) & (ThrottleCounter.key == key) & (ThrottleCounter.window_start == window)
    )
    if limit is not None:
        query = query.where(ThrottleCounter.failures < limit)
    return query.execute()


def _count(scope: str, key: str, window: datetime) -> int:
    row = ThrottleCounter.get_or_none(
        (ThrottleCounter.scope == scope) & (ThrottleCounter.key == key) & (ThrottleCounter.window_start == window)
    )
    return row.failures if row else 0


def current_window(now: datetime) -> tuple[datetime, int]:
    """Start of the fixed window holding ``now`` and the seconds until it ends."""
    span = policy.number("lockout_window_minutes") * 60
    elapsed = int((now - EPOCH).total_seconds())
    start = elapsed - elapsed % span
    return EPOCH + timedelta(seconds=start), start + span - elapsed


def _lock_end(now: datetime | None = None) -> str:
    """When the current window ends, as local time ("16:45")."""
    now = now or utcnow()
    _start, retry_after = current_window(now)
    return local_clock(now + timedelta(seconds=retry_after), now)


def _limits(account: str, ip: str, per_account: int, per_ip: int) -> list[tuple[str, str, int]]:
    both = (("acct", account.lower(), per_account), ("ip", ip, per_ip))
    return [(kind, key, limit) for kind, key, limit in both if key]


def _reserve(scope: str, limits: list[tuple[str, str, int]], window: datetime) -> tuple[Attempt, str]:
    """Take one slot of each limit; on the first one that is full, give back what was taken."""
    attempt = Attempt()
    for kind, key, limit in limits:
        scoped = f"{scope}:{kind}"
        ThrottleCounter.insert(scope=scoped, key=key, window_start=window, failures=0).on_conflict_ignore().execute()
        if _bump(scoped, key, window, +1, limit=limit) != 1:
            attempt.succeeded()
            return attempt, scoped
        attempt.slots.append((scoped, key, window, limit))
    return attempt, ""


def failure_limits() -> tuple[int, int]:
    """The lockout thresholds in force (policy lockout_*; PORTAL_THROTTLE_* by default): per account, per IP."""
    return policy.number("lockout_account_failures"), policy.number("lockout_ip_failures")


def begin(scope: str, account: str, ip: str, now: datetime | None = None, user_agent: str = "") -> Attempt:
    """Reserve one failure slot for the account and the IP, or raise Throttled (locked until the window ends)."""
    now = now or utcnow()
    window, retry_after = current_window(now)
    attempt, full = _reserve(scope, _limits(account, ip, *failure_limits()), window)
    if full:
        user = User.by_account(account.lower()) if account else None  # so that its owner is told (notices)
        audit.record(
            "locked_out", user=user, account=account, outcome="locked", client=Client(ip, user_agent), detail=full
        )
        raise Throttled(_("尝试次数过多,请于 %(time)s 后再试", time=_lock_end(now)), retry_after=retry_after)
    return attempt


def spend(scope: str, account: str, ip: str, per_account: int, per_ip: int, what: str) -> None:
    """Count one use against a cap (never given back); over it, Throttled naming ``what`` and until when."""
    now = utcnow()
    window, retry_after = current_window(now)
    _attempt, full = _reserve(scope, _limits(account, ip, per_account, per_ip), window)
    if full:
        audit.record("rate_limited", account=account, outcome="limited", client=Client(ip=ip), detail=full)
        raise Throttled(
            _("%(what)s过于频繁,请于 %(time)s 后再试", what=what, time=_lock_end(now)),
            retry_after=retry_after,
            code="rate_limited",
        )


def cap(scope: str, key: str, limits: tuple[tuple[int, int], ...], what: str) -> None:
    """Count one use of ``key`` against several windows at once, ``limits`` = ((seconds, uses), …), e.g.
    one 短信 per number per minute, 5 per hour, 10 per day; over any of them, Throttled and nothing counted."""
    now = utcnow()
    elapsed = int((now - EPOCH).total_seconds())
    taken: list[tuple[str, datetime]] = []
    for span, uses in limits:
        scoped, window = f"{scope}:{span}", EPOCH + timedelta(seconds=elapsed - elapsed % span)
        ThrottleCounter.insert(scope=scoped, key=key, window_start=window, failures=0).on_conflict_ignore().execute()
        if _bump(scoped, key, window, +1, limit=uses) != 1:
            for done_scope, done_window in taken:
                _bump(done_scope, key, done_window, -1)
            wait = span - elapsed % span
            audit.record("rate_limited", outcome="limited", detail=scoped)
            when = local_clock(now + timedelta(seconds=wait), now)
            raise Throttled(
                _("%(what)s过于频繁,请于 %(time)s 后再试", what=what, time=when), retry_after=wait, code="rate_limited"
            )
        taken.append((scoped, window))


def locked_until(scope: str, account: str, ip: str, now: datetime | None = None) -> datetime | None:
    """When the lock on this account or IP ends, if either is at its failure limit now; else None."""
    now = now or utcnow()
    window, retry_after = current_window(now)
    for kind, key, limit in _limits(account, ip, *failure_limits()):
        if _count(f"{scope}:{kind}", key, window) >= limit:
            return now + timedelta(seconds=retry_after)
    return None


def failures(scope: str, account: str, now: datetime | None = None) -> int:
    window, _left = current_window(now or utcnow())
    return _count(f"{scope}:acct", account.lower(), window)


def unlock(account: str) -> int:
    """Forget every failure counted against an account (admin action)."""
    return (
        ThrottleCounter.delete()
        .where(ThrottleCounter.scope.endswith(":acct") & (ThrottleCounter.key == account.lower()))
        .execute()
    )
