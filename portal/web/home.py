"""欢迎页 → 个人设置 → 安全设置, and the health check."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, render_template

from portal.db import db
from portal.services import audit
from portal.services.factors import recovery
from portal.web import guard

bp = Blueprint("home", __name__)


@bp.get("/")
def welcome():
    by_recovery_code = g.login.second_step == recovery.KEY
    return render_template(
        "home/welcome.html",
        not_me=audit.recent_not_me(g.user),
        recovery_left=recovery.remaining(g.user) if by_recovery_code else None,
    )


@bp.get("/settings")
def settings():
    return render_template("home/settings.html")


@bp.get("/settings/security")
def security():
    return render_template("home/security.html")


@bp.get("/healthz")
@guard.public
def healthz():
    try:
        db.execute_sql("SELECT 1")
    except Exception:  # any database failure means "not healthy"
        return jsonify(status="error", detail="database unavailable"), 503
    return jsonify(status="ok")
