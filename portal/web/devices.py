"""信任设备: browsers that skip the second step; list and revoke."""

from __future__ import annotations

from flask import Blueprint, g

from portal.services import trust
from portal.services.errors import DomainError
from portal.web.render import page_or_fragment

bp = Blueprint("devices", __name__, url_prefix="/settings/security/devices")
TEMPLATE = "security/devices.html"


@bp.get("")
def index():
    return _render()


# Row ids are 32-bit (PostgreSQL serial); a larger number would overflow SQLite's driver: 404 instead.
@bp.post("/<int(max=2147483647):device_id>/revoke")
def revoke(device_id: int):
    try:
        trust.revoke(g.user, device_id, g.client)
    except DomainError as exc:
        return _render(error=exc.message)
    return _render(notice="已移除该信任设备")


@bp.post("/revoke-all")
def revoke_all():
    count = trust.revoke_all(g.user, "revoked by user", g.client)
    return _render(notice=f"已移除 {count} 台信任设备")


def _render(**context):
    return page_or_fragment(TEMPLATE, "devices", devices=trust.active(g.user), **context)
