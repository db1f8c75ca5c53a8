"""Backend of the 邮箱安全助手 mini-program (JSON API at /api/wx/v1). Built in issue #3."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("wx_api", __name__, url_prefix="/api/wx/v1")
