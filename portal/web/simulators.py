"""Development simulators (PORTAL_DEV_SIMULATORS only): the mini-program and the App on a laptop."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from portal.services.errors import InvalidInput
from portal.web import guard, pwa
from wechat_backend import stub

bp = Blueprint("simulators", __name__, url_prefix="/dev")


@bp.get("/miniprogram")
@guard.public
def miniprogram():
    return render_template("dev/miniprogram.html", scan=request.args.get("scan", ""))


@bp.get("/app")
@guard.public
def app():
    """The 邮箱安全 App itself (/app) on a laptop: ?scan=<a QR's URL> stands for pointing the camera at it."""
    return pwa.shell(simulator=True)


@bp.post("/miniprogram/wx-login")
@guard.public
def wx_login():
    """wx.login() on the simulated phone: the WeChat stub mints a code for this openid."""
    openid = (request.get_json(silent=True) or {}).get("openid", "")
    if not isinstance(openid, str) or not 1 <= len(openid) <= 64:
        raise InvalidInput("openid 为 1–64 个字符")
    try:
        code = stub.request_code(str(current_app.config["WECHAT_API_BASE"]), openid)
    except Exception as exc:  # the stub is down or is not a stub: say so
        current_app.logger.warning("WeChat stub unreachable: %s", exc)
        return jsonify(error={"code": "stub_unavailable", "message": "微信模拟服务未启动(make run 会启动它)"}), 503
    return jsonify(code=code)
