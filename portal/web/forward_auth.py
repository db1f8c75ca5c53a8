"""GET /authz/verify: nginx ``auth_request`` for other campus apps (see portal/services/forward_auth.py).

Outside the login guard and CSRF: the caller is nginx, checked by its shared secret; the browser's
session comes from the portal cookie nginx passes on (the guard has resolved it into ``g.login``).
"""

from __future__ import annotations

from flask import Blueprint, g, make_response, request

from portal.services import forward_auth
from portal.web import guard

bp = Blueprint("forward_auth", __name__, url_prefix="/authz")


@bp.get("/verify")
def verify():
    accept = request.headers.get("Accept")
    query = forward_auth.Query(
        secret=request.headers.get("X-Forward-Auth-Secret"),
        original_url=request.headers.get("X-Original-URL"),
        cookie_token=request.cookies.get(guard.cookie_name(guard.SESSION_COOKIE)),
        xhr=request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest",
        accepts_html=not accept or request.accept_mimetypes.quality("text/html") > 0,
    )
    answer = forward_auth.verify(query, g.login, g.client)
    response = make_response("", answer.status)
    response.headers.update(answer.headers)
    response.headers["Content-Type"] = "text/plain"
    return response
