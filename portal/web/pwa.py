"""/app: the 邮箱安全 App as an installable web app (PWA) served by the portal itself.

Every page of the App is one shell (templates/app/index.html); the App reads its own address: the bind
QR's /app/enroll/<t> asks to enroll (确定绑定), a login QR's /app/t/<t> asks to approve (扫码登录). Its
keys and accounts live on the phone (IndexedDB); it talks to the portal only over the signed device API.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request, send_from_directory, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import i18n
from portal.web import app_messages, guard

bp = Blueprint("pwa", __name__)
NAME = _l("邮箱安全")


def shell(simulator: bool = False):
    """The App; the development simulator (/dev/app) is the same App on a laptop, scanning by pasting."""
    return render_template(
        "app/index.html",
        simulator=simulator,
        scan=request.args.get("scan", "") if simulator else "",
        messages=app_messages.catalog(),
    )


@bp.get("/app")
@bp.get("/app/")
@bp.get("/app/enroll/<ticket>", endpoint="enroll")
@bp.get("/app/t/<ticket>", endpoint="ticket")
@guard.public
def index(ticket: str = ""):
    return shell()


@bp.get("/app/manifest.webmanifest")
@guard.public
def manifest():
    icons = [
        {
            "src": url_for("static", filename=f"app/icon-{size}.png"),
            "sizes": f"{size}x{size}",
            "type": "image/png",
            "purpose": "any maskable",
        }
        for size in (192, 512)
    ]
    icons.append({"src": url_for("static", filename="app/icon.svg"), "sizes": "any", "type": "image/svg+xml"})
    response = jsonify(
        id="/app",
        name=str(NAME),
        short_name=str(NAME),
        description=_("%(org)s二次验证:确认登录、查看 6 位验证码", org=current_app.config["ORG_NAME"]),
        lang=i18n.html_lang(),
        start_url="/app",
        scope="/app",
        display="standalone",
        orientation="portrait",
        background_color="#f3f5f8",
        theme_color="#1e6fd9",
        icons=icons,
    )
    response.mimetype = "application/manifest+json"
    return response


@bp.get("/app/sw.js")
@guard.public
def service_worker():
    """Served under /app so that it may control /app (scope /app needs the Service-Worker-Allowed header);
    never cached (no-store, like every page), so an update reaches the phones at their next visit."""
    response = send_from_directory(current_app.static_folder, "app/sw.js", mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/app"
    return response
