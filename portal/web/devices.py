"""信任设备: browsers that skip the second step; list and revoke."""

from __future__ import annotations

from flask import Blueprint, g
from flask_babel import gettext as _
from flask_babel import ngettext

from portal.services import step_up, trust
from portal.services.errors import DomainError
from portal.services.step_up import StepUpRequired
from portal.web import step_up as step_up_view
from portal.web.render import page_or_fragment, targets

bp = Blueprint("devices", __name__, url_prefix="/settings/security/devices")
TEMPLATE = "security/devices.html"
CLEAR, DONE = "security/devices/_clear.html", "security/devices/_done.html"  # its dialogs
CHANGED = "devicesChanged"


@bp.get("")
def index():
    return _render("devices" if targets("devices") else "content")


# Row ids are 32-bit (PostgreSQL serial); a larger number would overflow SQLite's driver: 404 instead.
@bp.post("/<int(max=2147483647):device_id>/revoke")
def revoke(device_id: int):
    try:
        trust.revoke(g.user, device_id, g.client)
    except DomainError as exc:
        return _render(error=exc.message)
    return _render(notice=_("已移除该信任设备"))


@bp.get("/revoke-all")
def clear_form():
    """全部移除: asks for a fresh verification first, then to confirm."""
    if step_up.needed(g.login):
        return step_up_view.ask("trusted-devices")
    return _render("dialog", dialog=CLEAR)


@bp.post("/revoke-all")
def revoke_all():
    try:
        count = trust.clear(g.login, g.client)
    except StepUpRequired as exc:
        return step_up_view.ask(exc.action)
    return _render(
        "dialog",
        dialog=DONE,
        done=ngettext("已移除 %(num)s 台信任设备", "已移除 %(num)s 台信任设备", count),
        trigger=CHANGED,
    )


def _render(block: str = "devices", trigger: str | None = None, **context):
    return page_or_fragment(TEMPLATE, block, trigger=trigger, devices=trust.active(g.user), **context)
