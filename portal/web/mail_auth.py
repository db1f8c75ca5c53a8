"""GET /mail/auth: nginx's mail auth_http endpoint (IMAP/POP3/SMTP logins through the mail proxy);
POST /mail/check: the same decision for Dovecot's checkpassword program (bin/portal-checkpassword).

Outside the login guard and CSRF (nginx has no session); the caller is checked instead.
The answer is in the headers only; nginx ignores the status line and the body.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, make_response, request
from werkzeug.exceptions import HTTPException

from portal.services import mail_auth

bp = Blueprint("mail_auth", __name__, url_prefix="/mail")


@bp.get("/auth")
def auth():
    if not mail_auth.caller_allowed(request.remote_addr, request.headers.get("X-Mail-Auth-Secret")):
        return make_response("forbidden\n", 403, {"Content-Type": "text/plain"})
    headers = request.headers
    query = mail_auth.AuthRequest(
        method=headers.get("Auth-Method", ""),
        user=headers.get("Auth-User", ""),
        password=headers.get("Auth-Pass", ""),
        protocol=headers.get("Auth-Protocol", ""),
        attempt=headers.get("Auth-Login-Attempt", ""),
        client_ip=headers.get("Client-IP", ""),
    )
    return _reply(mail_auth.answer(query))


@bp.post("/check")
def check():
    """One checkpassword login (or userdb lookup): JSON {"result": "ok" | "refused" | "unknown", …}."""
    if not mail_auth.caller_allowed(request.remote_addr, request.headers.get("X-Mail-Auth-Secret")):
        return make_response("forbidden\n", 403, {"Content-Type": "text/plain"})
    form = request.form
    decision = mail_auth.check(
        form.get("user", ""),
        form.get("password", ""),
        form.get("service", ""),
        form.get("ip", ""),
        lookup=form.get("lookup") == "1",
    )
    return jsonify(decision)


@bp.errorhandler(Exception)
def _failed(exc: Exception):
    """The portal failed (e.g. the database is down): nginx tells the client to try again later."""
    if isinstance(exc, HTTPException):
        return exc
    current_app.logger.exception("mail auth failed", exc_info=exc)
    return _reply(mail_auth.temporary_failure(request.headers.get("Auth-Protocol", "")), 503)


def _reply(headers: dict[str, str], status: int = 200):
    response = make_response("", status)
    response.headers.update(headers)
    response.headers["Content-Type"] = "text/plain"
    return response
