"""Failure throttling per account and per client IP, kept in the database.

An attempt first reserves a slot with an atomic conditional increment
(``failures = failures + 1 WHERE failures < limit``); a success gives the slot
back. Parallel guesses can therefore never exceed the limit, and a locked
counter is refused before any password or code is evaluated, so a lockout
cannot be used as an oracle nor extended: it ends with its window.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app

from portal.models import ThrottleCounter, utcnow
from portal.services import audit
from portal.services.client import Client
from portal.services.errors import DomainError, Throttled

EPOCH = datetime(1970, 1, 1)


@dataclass
class Attempt:
    """Slots reserved for one attempt; ``succeeded`` hands them back.

    Used as a context manager, it also hands them back when the server fails during the attempt
    (an error of status 5xx or an unexpected exception): that is no failure of the person trying.
    """

    slots: list[tuple[str, str, datetime]] = field(default_factory=list)

    def succeeded(self) -> None:
        for scope, key, window in self.slots:
            _bump(scope, key, window, -1)
        self.slots.clear()

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


def current_window(now: datetime) -> tuple[datetime, int]:
    """Start of the fixed window holding ``now`` and the seconds until it ends."""
    span = int(current_app.config["THROTTLE_WINDOW_MINUTES"]) * 60
    elapsed = int((now - EPOCH).total_seconds())
    start = elapsed - elapsed % span
    return EPOCH + timedelta(seconds=start), start + span - elapsed


def begin(scope: str, account: str, ip: str, now: datetime | None = None) -> Attempt:
    """Reserve one failure slot for the account and the IP, or raise Throttled."""
    window, retry_after = current_window(now or utcnow())
    limits = [
        ("acct", account.lower(), int(current_app.config["THROTTLE_ACCOUNT_FAILURES"])),
        ("ip", ip, int(current_app.config["THROTTLE_IP_FAILURES"])),
    ]
    attempt = Attempt()
    for kind, key, limit in limits:
        if not key:
            continue
        scoped = f"{scope}:{kind}"
        ThrottleCounter.insert(scope=scoped, key=key, window_start=window, failures=0).on_conflict_ignore().execute()
        if _bump(scoped, key, window, +1, limit=limit) != 1:
            attempt.succeeded()  # release what this attempt already took
            audit.record("locked_out", account=account, outcome="locked", client=Client(ip=ip), detail=scoped)
            minutes = max(1, (retry_after + 59) // 60)
            raise Throttled(f"尝试次数过多,请 {minutes} 分钟后再试", retry_after=retry_after)
        attempt.slots.append((scoped, key, window))
    return attempt


def failures(scope: str, account: str, now: datetime | None = None) -> int:
    window, _ = current_window(now or utcnow())
    row = ThrottleCounter.get_or_none(
        (ThrottleCounter.scope == f"{scope}:acct")
        & (ThrottleCounter.key == account.lower())
        & (ThrottleCounter.window_start == window)
    )
    return row.failures if row else 0


def unlock(account: str) -> int:
    """Forget every failure counted against an account (admin action)."""
    return (
        ThrottleCounter.delete()
        .where(ThrottleCounter.scope.endswith(":acct") & (ThrottleCounter.key == account.lower()))
        .execute()
    )
