"""审计日志 (/admin/audit): the audit trail filtered by account, event, outcome, IP/CIDR and time, newest
first; 加载更多 appends the next page (htmx), ``format=csv`` streams the whole filtered view."""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _

from portal.models import utcnow
from portal.services import audit_search, event_labels, roles
from portal.timezone import local
from portal.web.admin import bp, requires
from portal.web.render import csv_download, is_htmx, page_or_fragment

TEMPLATE = "admin/audit.html"


@bp.get("/audit")
@requires(roles.AUDIT)
def audit_log():
    """The page (or, for 加载更多, the next rows); ``format=csv`` the whole filtered view."""
    filters = audit_search.parse(request.args)
    cursor = request.args.get("cursor", "")
    block = "more" if is_htmx() and cursor else "results"
    context = {"filters": filters, "events": [], "cursor": None, "labels": event_labels, "field_labels": _labels()}
    context.update(event_choices=event_labels.events(), outcome_choices=event_labels.outcomes())
    if not filters.errors and request.args.get("format") == "csv":
        audit_search.record_export(filters, g.user, g.client)
        return _csv(filters)
    if not filters.errors:
        try:
            found = audit_search.page(filters, cursor, audit_search.PAGE_SIZE)
            context.update(events=found.events, cursor=found.cursor)
        except ValueError as exc:  # a hand-made cursor
            filters.errors["cursor"] = str(exc)
    return page_or_fragment(TEMPLATE, block, **context)


def _labels() -> dict[str, str]:
    """The name of each filter, in front of its error message."""
    return {
        "account": _("账号:"),
        "event": _("事件:"),
        "outcome": _("结果:"),
        "ip": _("IP:"),
        "since": _("开始时间:"),
        "until": _("结束时间:"),
        "cursor": "",
    }


def _csv(filters: audit_search.Filters):
    header = [_("时间(北京时间)"), _("账号"), _("事件"), _("事件代码"), _("方式"), _("结果"), "IP"]
    header += [_("浏览器"), _("详情")]
    rows = (
        (
            local(row.created_at, "%Y-%m-%d %H:%M:%S"),
            row.account,
            event_labels.event(row.event),
            row.event,
            event_labels.method(row.method),
            event_labels.outcome(row.outcome),
            row.ip,
            row.user_agent,
            row.detail,
        )
        for row in audit_search.export(filters)
    )
    return csv_download(f"audit-{local(utcnow(), '%Y%m%d-%H%M')}.csv", header, rows)
