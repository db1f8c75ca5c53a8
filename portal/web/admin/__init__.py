"""/admin: the 网络信息化中心's console. Each view names the permission it needs (``requires``); a view
without one is refused, so a new route cannot be open by mistake. Any POST also needs a fresh second
step (step-up), on top of CSRF and the full session the guard already asked for.

One module per page: reports (统计报表), users (用户支持), and whatever else ``NAV`` lists.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.services import roles, step_up
from portal.services.errors import NotAllowed
from portal.services.step_up import StepUpRequired
from portal.web.render import redirect_to

bp = Blueprint("admin", __name__, url_prefix="/admin")
STEP_UP_ACTION = "admin"
# The side navigation: (endpoint, label, permission); an entry shows to those who may open it.
NAV = [
    ("admin.index", _l("统计报表"), roles.REPORTS),
    ("admin.audit_log", _l("审计日志"), roles.AUDIT),
    ("admin.user_support", _l("用户支持"), roles.USERS),
    ("admin.policy_page", _l("策略"), roles.POLICY),
]


def requires(permission: str):
    """Mark a view with the permission (portal.services.roles) its caller's role must carry."""

    def mark(view):
        view.admin_permission = permission
        return view

    return mark


@bp.before_request
def _check_access():
    # The guard has already required a full session (password and second factor).
    view = current_app.view_functions.get(request.endpoint or "")
    permission = getattr(view, "admin_permission", None)
    if permission is None or not roles.allows(g.user, permission):
        raise NotAllowed(_("您的角色无权访问此页面") if g.user.is_staff else _("仅管理员可以访问此页面"))
    if request.method == "POST":
        try:
            step_up.require(g.login, STEP_UP_ACTION)
        except StepUpRequired:
            return redirect_to(url_for("step_up.verify_form", action=STEP_UP_ACTION))
    return None


def nav_entries() -> list[tuple[str, str]]:
    """The (url, label) of the console pages this user may open."""
    return [
        (url_for(endpoint), str(label))
        for endpoint, label, permission in NAV
        if endpoint in current_app.view_functions and roles.allows(g.user, permission)
    ]


def first_page() -> str | None:
    entries = nav_entries()
    return entries[0][0] if entries else None


@bp.app_context_processor
def _console():
    return {"admin_nav": nav_entries, "role_label": roles.label}


from portal.web.admin import access_codes, audit, policy, reports, users  # noqa: E402,F401  (views register on bp)
