"""修改密码 (/settings/security/password): the user's own main password, where it lives."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request
from flask_babel import gettext as _

from portal.services import password_change
from portal.services.errors import DomainError

bp = Blueprint("password", __name__, url_prefix="/settings/security/password")
TEMPLATE = "security/password.html"


@bp.get("")
def form():
    return _page()


@bp.post("")
def submit():
    field = request.form.get
    try:
        password_change.change(g.login, field("current", ""), field("new", ""), field("repeat", ""), g.client)
    except DomainError as exc:
        return _page(error=exc.message, status=exc.status)
    return _page(notice=_("密码已修改。其他设备上的登录已退出,信任设备已失效;请在邮件客户端中使用新密码或专用密码。"))


def _page(status: int = 200, **context):
    return render_template(
        TEMPLATE,
        here=password_change.where(g.user) == "here",
        elsewhere=password_change.elsewhere_url(),
        min_length=password_change.MIN_LENGTH,
        **context,
    ), status
