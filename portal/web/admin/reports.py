"""统计报表 (/admin): 30-day charts (SVG, server-rendered) with their tables, adoption, logins, lockouts,
the newest refusals; every table also as CSV (``?format=csv&table=NAME``). Staff without the
permission go to their first page."""

from __future__ import annotations

from flask import abort, g, redirect, render_template, request
from flask_babel import gettext as _

from portal.oidc import clients
from portal.services import charts, event_labels, report_tables, reports, roles
from portal.timezone import local
from portal.web.admin import bp, first_page, requires
from portal.web.render import csv_download

# Chart kind per 30-day table: stacked bars of counts, lines of a level.
CHARTS = {"logins": charts.bars, "second_steps": charts.bars, "approvals": charts.bars, "adoption_trend": charts.lines}


@bp.get("")
@requires(roles.CONSOLE)
def index():
    if not roles.allows(g.user, roles.REPORTS):  # every role has a first page
        return redirect(first_page())
    if request.args.get("format") == "csv":
        return _csv(request.args.get("table", ""))
    adoption = reports.adoption()
    tables = report_tables.all_tables(adoption_now=adoption.counts)
    return render_template(
        "admin/index.html",
        daily=[(table, CHARTS[name](str(table.title), table.labels, table.series())) for name, table in tables.items()],
        adoption=adoption,
        activity=reports.activity(),
        periods=[label for label, _ in reports.PERIODS],
        lockouts=reports.lockouts(),
        failures=reports.recent_failures(),
        sso_clients=clients.listing(),
        labels=event_labels,
    )


def _csv(name: str):
    """One table of the page as a CSV download; an unknown name is a 404."""
    if name in CHARTS:
        table = report_tables.all_tables()[name]
        return csv_download(f"{name}.csv", table.header(), table.cells())
    export = EXPORTS.get(name)
    if export is None:
        abort(404)
    header, rows = export()
    return csv_download(f"{name}.csv", header, rows)


def _adoption():
    counts = reports.adoption().by_method
    return [_("验证方式"), _("绑定账号数")], list(counts.items())


def _activity():
    periods = [str(label) for label, _ in reports.PERIODS]
    return [_("事件"), *periods], [[str(label), *counts] for label, counts in reports.activity()]


def _lockouts():
    header = [_("账号 / IP"), _("类别"), _("失败次数"), _("自动解除时间")]
    return header, [[lock.key, lock.label, lock.failures, local(lock.until)] for lock in reports.lockouts()]


def _failures():
    header = [_("时间"), _("账号"), _("事件"), _("验证方式"), _("结果"), _("IP"), _("详情")]
    rows = [
        [
            local(e.created_at, "%Y-%m-%d %H:%M:%S"),
            e.account,
            event_labels.event(e.event),
            event_labels.method(e.method),
            event_labels.outcome(e.outcome),
            e.ip,
            e.detail,
        ]
        for e in reports.recent_failures()
    ]
    return header, rows


EXPORTS = {"adoption": _adoption, "activity": _activity, "lockouts": _lockouts, "failures": _failures}
