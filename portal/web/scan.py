"""What a QR ticket URL shows when opened in an ordinary browser instead of WeChat."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.web import guard

bp = Blueprint("scan", __name__)


@bp.get("/wx/t/<ticket>")
@guard.public
def wechat_ticket(ticket: str):
    return render_template("scan/wechat.html", ticket=ticket)
