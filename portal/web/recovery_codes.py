"""备用码: generate a set (shown once, 下载 as a text file while it is fresh), see how many are left."""

from __future__ import annotations

from flask import Blueprint, g, make_response, render_template
from flask_babel import gettext as _

from portal.services import factors, step_up
from portal.services.errors import DomainError, NotFound
from portal.services.factors import recovery
from portal.services.step_up import StepUpRequired
from portal.web import step_up as step_up_view

bp = Blueprint("recovery_codes", __name__, url_prefix="/settings/security/recovery-codes")
TEMPLATE = "security/recovery_codes.html"


@bp.get("")
def index():
    return _page()


@bp.post("")
def generate():
    try:
        codes = recovery.issue(g.login, g.user, g.client)
    except StepUpRequired as exc:
        return step_up_view.ask(exc.action)
    except DomainError as exc:
        return _page(error=exc.message)
    return _page(codes=codes)


@bp.get("/download")
def download():
    """The set just generated, as a text file (only while it is fresh, and only in this session)."""
    codes = recovery.fresh(g.login)
    if not codes:
        raise NotFound(_("备用码只在生成后 10 分钟内可以下载,请重新生成"))
    body = render_template("security/recovery_codes.txt", codes=codes, account=g.user.account)
    response = make_response(body)
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    response.headers["Content-Disposition"] = "attachment; filename=recovery-codes.txt"
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(codes: list[str] | None = None, error: str | None = None):
    return render_template(
        TEMPLATE,
        codes=codes,
        error=error,
        left=recovery.remaining(g.user),
        bound=bool(factors.bound_methods(g.user)),
        step_up_first=step_up.needed(g.login),
    )
