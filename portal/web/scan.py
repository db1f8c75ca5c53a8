"""What a WeChat QR URL shows when opened in an ordinary browser instead of in WeChat.

(The 邮箱安全 App's QR URLs, /app/enroll/<t> and /app/t/<t>, open the App itself: portal/web/pwa.py.)
"""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.web import guard

bp = Blueprint("scan", __name__)


@bp.get("/wx/t/<ticket>")
@guard.public
def wechat_ticket(ticket: str):
    return render_template("scan/phone.html")
