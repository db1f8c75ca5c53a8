"""Times are stored in UTC and shown in the university's zone (Asia/Shanghai)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")


def local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A naive UTC time from the database as local text; "—" for none."""
    if value is None:
        return "—"
    return value.replace(tzinfo=UTC).astimezone(LOCAL).strftime(fmt)


def local_clock(value: datetime, now: datetime) -> str:
    """A time soon after ``now`` as a person reads it: "16:45", with the date when it is another day."""
    same_day = local(value, "%Y-%m-%d") == local(now, "%Y-%m-%d")
    return local(value, "%H:%M" if same_day else "%m-%d %H:%M")
