"""统计报表 (/admin): adoption, logins, lockouts, the newest refusals; staff without it go to their first page."""

from __future__ import annotations

from flask import g, redirect, render_template

from portal.oidc import clients
from portal.services import reports, roles
from portal.web.admin import bp, first_page, requires


@bp.get("")
@requires(roles.CONSOLE)
def index():
    if not roles.allows(g.user, roles.REPORTS):  # every role has a first page
        return redirect(first_page())
    return render_template(
        "admin/index.html",
        adoption=reports.adoption(),
        activity=reports.activity(),
        periods=[label for label, _ in reports.PERIODS],
        lockouts=reports.lockouts(),
        failures=reports.recent_failures(),
        sso_clients=clients.listing(),
    )
