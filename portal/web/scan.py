"""What a QR URL shows when opened in an ordinary browser instead of the phone it is meant for."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.web import guard

bp = Blueprint("scan", __name__)


@bp.get("/wx/t/<ticket>")
@guard.public
def wechat_ticket(ticket: str):
    return render_template("scan/phone.html", app="微信", simulator="simulators.miniprogram")


@bp.get("/app/t/<ticket>")
@bp.get("/app/enroll/<ticket>", endpoint="app_enroll")
@guard.public
def app_ticket(ticket: str):
    return render_template("scan/phone.html", app="邮箱安全 App", simulator="simulators.app")
