"""The 统计报表's 30-day tables (one per chart), read from the daily summaries (report_summary), never
from the audit log: a request reads at most 30 × a few dozen rows whatever the log's size."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l

from portal.models import AdoptionDaily, AuditDaily, Ticket, utcnow
from portal.services import event_labels, factors, report_summary
from portal.services.factors import recovery

DAYS = 30
# 登录 by result: (label, event, outcome).
LOGIN_RESULTS = (
    (_l("成功"), "login_complete", "ok"),
    (_l("密码错误"), "login_password", "fail"),
    (_l("验证码错误"), "login_verify", "fail"),
    (_l("锁定"), "locked_out", "locked"),
)
LOGIN_APPROVALS = ("app_login_approved", "wechat_login_approved")
LOGIN_DENIALS = ("app_login_denied", "wechat_login_denied")
NO_SECOND_STEP = _l("免二次验证(信任设备等)")


@dataclass
class Table:
    """Rows of (first cell, one number per column); ``name`` is its ?table= in the CSV link."""

    name: str
    title: str
    first: str
    columns: list[str]
    rows: list[tuple[str, list[int | None]]] = field(default_factory=list)

    def header(self) -> list[str]:
        return [str(self.first), *map(str, self.columns)]

    def cells(self) -> list[list[object]]:
        return [[label, *("" if v is None else v for v in values)] for label, values in self.rows]

    def series(self) -> list[tuple[str, list[int | None]]]:
        """The columns as chart series."""
        return [(str(name), [values[i] for _, values in self.rows]) for i, name in enumerate(self.columns)]

    @property
    def labels(self) -> list[str]:
        return [label[5:] for label, _ in self.rows]  # 2026-12-01 → 12-01 under the chart


def days(now: datetime | None = None, count: int = DAYS) -> list[date]:
    """The last ``count`` local days, oldest first, today last."""
    today = report_summary.local_day(now or utcnow())
    return [today - timedelta(days=back) for back in range(count - 1, -1, -1)]


def daily_counts(since: date) -> dict[date, dict[tuple[str, str, str], int]]:
    """day → (event, method, outcome) → count, from the summary."""
    rows = AuditDaily.select(AuditDaily.day, AuditDaily.event, AuditDaily.method, AuditDaily.outcome, AuditDaily.total)
    counts: dict[date, dict[tuple[str, str, str], int]] = defaultdict(dict)
    for day, event, method, outcome, total in rows.where(AuditDaily.day >= since).tuples():
        counts[_as_date(day)][(event, method, outcome)] = total
    return counts


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _sum(day_counts: dict[tuple[str, str, str], int], events, outcomes, method: str | None = None) -> int:
    return sum(
        n
        for (event, m, outcome), n in day_counts.items()
        if event in events and outcome in outcomes and (method is None or m == method)
    )


def logins(span: list[date], counts) -> Table:
    table = Table("logins", _l("每日登录(按结果)"), _l("日期"), [label for label, _, _ in LOGIN_RESULTS])
    for day in span:
        values = [_sum(counts.get(day, {}), (event,), (outcome,)) for _, event, outcome in LOGIN_RESULTS]
        table.rows.append((day.isoformat(), values))
    return table


def _method_label(code: str) -> str:
    return str(NO_SECOND_STEP) if code == "" else event_labels.method(code)


def second_steps(span: list[date], counts) -> Table:
    """Completed logins by the second step they passed ("" = none needed: trusted device, network…)."""
    used = {
        m for day in span for (event, m, outcome) in counts.get(day, {}) if (event, outcome) == ("login_complete", "ok")
    }
    order = [*factors.METHODS, recovery.KEY]
    methods = sorted(used, key=lambda m: (order.index(m) if m in order else len(order), m))
    table = Table("second_steps", _l("每日二次验证(按验证方式)"), _l("日期"), [_method_label(m) for m in methods])
    for day in span:
        values = [_sum(counts.get(day, {}), ("login_complete",), ("ok",), m) for m in methods]
        table.rows.append((day.isoformat(), values))
    return table


def approvals(span: list[date], counts, now: datetime) -> Table:
    """Login approvals on the phone (App, WeChat): approved, 不是本人操作, other denials, expired undecided."""
    columns = [_l("已批准"), _l("不是本人操作"), _l("其他拒绝"), _l("已过期")]
    table = Table("approvals", _l("每日登录确认(App / 微信)"), _l("日期"), columns)
    live = _expired_tickets(span[0], now)
    for day in span:
        day_counts = counts.get(day, {})
        expired = _sum(day_counts, (report_summary.EXPIRED_TICKET,), ("expired",)) + live.get(day, 0)
        table.rows.append(
            (
                day.isoformat(),
                [
                    _sum(day_counts, LOGIN_APPROVALS, ("ok",)),
                    _sum(day_counts, LOGIN_DENIALS, ("not_me",)),
                    _sum(day_counts, LOGIN_DENIALS, ("denied",)),
                    expired,
                ],
            )
        )
    return table


def _expired_tickets(since: date, now: datetime) -> dict[date, int]:
    """Login tickets expired undecided that prune has not yet counted (it counts them as it deletes them)."""
    rows = Ticket.select(Ticket.created_at).where(
        (Ticket.purpose == "login")
        & Ticket.state.in_(("pending", "scanned"))
        & (Ticket.expires_at < now)
        & (Ticket.created_at >= report_summary.day_start(since))
    )
    found: dict[date, int] = defaultdict(int)
    for (created_at,) in rows.tuples():
        found[report_summary.local_day(created_at)] += 1
    return found


def adoption(span: list[date]) -> Table:
    """Accounts with each method bound at each day's end (snapshots; a day without one is blank)."""
    snapshots: dict[date, dict[str, int]] = defaultdict(dict)
    query = AdoptionDaily.select(AdoptionDaily.day, AdoptionDaily.method, AdoptionDaily.accounts)
    for day, method, accounts in query.where(AdoptionDaily.day >= span[0]).tuples():
        snapshots[_as_date(day)][method] = accounts
    methods = ["", *factors.METHODS]
    labels = [_l("任一方式"), *(m.label for m in factors.METHODS.values())]
    table = Table("adoption_trend", _l("二次验证启用趋势(账号数)"), _l("日期"), labels)
    for day in span:
        known = snapshots.get(day)
        table.rows.append((day.isoformat(), [known.get(m, 0) if known else None for m in methods]))
    return table


def all_tables(now: datetime | None = None, adoption_now: dict[str, int] | None = None) -> dict[str, Table]:
    """name → table, for the page and its CSV links; today's adoption snapshot is taken first (from
    ``adoption_now``, method → accounts, when the caller has counted them already)."""
    now = now or utcnow()
    if adoption_now is None:
        report_summary.snapshot_adoption(now)
    else:
        report_summary.save_adoption({report_summary.local_day(now): adoption_now})
    span = days(now)
    counts = daily_counts(span[0])
    tables = (logins(span, counts), second_steps(span, counts), approvals(span, counts, now), adoption(span))
    return {table.name: table for table in tables}
