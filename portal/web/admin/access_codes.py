"""临时访问码 on the 用户支持 page: a helpdesk issues one to a user who lost the phone, or 作废 it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, render_template, request
from flask_babel import gettext as _

from portal.models import TemporaryAccessCode, User
from portal.services import accounts, roles, temporary_access
from portal.services.errors import DomainError
from portal.web.admin import bp, requires, users
from portal.web.render import is_htmx

PARTIAL = "admin/_temporary_code.html"


@dataclass
class State:
    """What the panel shows for one account: its active code (expiry, issuer) or why none can be issued."""

    active: TemporaryAccessCode | None
    refusal: str | None
    lifetimes: tuple[int, ...] = temporary_access.LIFETIMES
    default_minutes: int = temporary_access.DEFAULT_MINUTES


def state(user: User) -> State:
    return State(temporary_access.active(user), temporary_access.refusal(user))


@bp.app_context_processor
def _panel():
    return {"temporary_code_state": state, "may_support": lambda: roles.allows(g.user, roles.SUPPORT)}


@bp.post("/users/temporary-code")
@requires(roles.SUPPORT)
def issue_temporary_code():
    """签发临时访问码: shown once in the answer (``data-temporary-code``), never again."""
    form = request.form
    return _act(
        lambda user: {
            "issued": temporary_access.issue(user, g.user, form.get("reason", ""), form.get("minutes"), g.client)
        }
    )


@bp.post("/users/temporary-code/revoke")
@requires(roles.SUPPORT)
def revoke_temporary_code():
    def revoke(user: User) -> dict:
        temporary_access.revoke(user, g.user, g.client)
        return {"temporary_notice": _("临时访问码已作废")}

    return _act(revoke)


def _act(action):
    """Run ``action`` on the form's account; the panel again (htmx) or the whole 用户支持 page."""
    user = accounts.get(request.form.get("account", ""))  # unknown: the error page (htmx: the flash)
    try:
        context, status = action(user), 200
    except DomainError as exc:
        context, status = {"temporary_error": exc.message}, exc.status
    if not is_htmx():
        return users._support(user.account, status=status, **context)
    # htmx swaps only 2xx answers: the refusal is shown in the panel (the message says what went wrong).
    return render_template(PARTIAL, user=user, **context)
