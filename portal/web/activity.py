"""登录记录 (/settings/security/activity): the account's web and mail-client logins of the last 90 days."""

from __future__ import annotations

from flask import Blueprint, g, request

from portal.services import activity
from portal.web.render import page_or_fragment

bp = Blueprint("activity", __name__, url_prefix="/settings/security/activity")
TEMPLATE = "security/activity.html"


@bp.get("")
def index():
    """The whole page; 加载更多 (htmx) gets the next rows only, as a fragment."""
    before = activity.parse_cursor(request.args.get("before"))
    return page_or_fragment(TEMPLATE, "rows", page=activity.page(g.user, before))
