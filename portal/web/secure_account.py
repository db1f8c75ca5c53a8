"""保护帐号 (/settings/security/secure): where the "如非本人操作" link of every security notice leads.

After a fresh login (or a fresh verification in a browser already logged in) one button ends every
other session, trusted device and single sign-on token; the page then leads to 修改密码 and 二次验证设置.
"""

from __future__ import annotations

from flask import Blueprint, g, render_template, request

from portal.services import revocation, sessions, step_up
from portal.services.step_up import StepUpRequired
from portal.web import continuation, guard
from portal.web import step_up as step_up_view
from portal.web.render import redirect_to

bp = Blueprint("secure_account", __name__, url_prefix="/settings/security/secure")
TEMPLATE = "security/secure.html"


@bp.get("")
@guard.public
def page():
    if g.login is None or g.login.stage != sessions.FULL:  # finish the login first, then come back here
        continuation.remember(request.path)
        return redirect_to(guard.home_for(g.login.stage if g.login else None))
    if step_up.needed(g.login):
        return step_up_view.ask(revocation.SECURE_ACTION)
    return render_template(TEMPLATE)


@bp.post("")
def submit():
    try:
        ended = revocation.secure_account(g.login, g.client)
    except StepUpRequired as exc:
        return step_up_view.ask(exc.action)
    return render_template(TEMPLATE, ended=ended)
