"""/api/wx/v1: JSON in and out, Authorization: Bearer <token>, errors as {"error": {code, message}}."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from portal.models import utcnow
from portal.services import wechat
from portal.services.errors import DomainError, InvalidInput
from wechat_backend import client

blueprint = Blueprint("wx_api", __name__, url_prefix="/api/wx/v1")


def error_response(code: str, message: str, status: int):
    return jsonify(error={"code": code, "message": message}), status


@blueprint.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    return error_response(exc.code, exc.message, exc.status)


def _body() -> dict:
    body = request.get_json(silent=True)
    if body is None and request.content_length:
        raise InvalidInput("请求体必须是 JSON", code="invalid_json")
    if body is not None and not isinstance(body, dict):
        raise InvalidInput("请求体必须是 JSON 对象", code="invalid_json")
    return body or {}


def _user():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return wechat.authenticate(token.strip() if scheme.lower() == "bearer" else None)


@blueprint.post("/session")
def create_session():
    code = _body().get("code")
    if not isinstance(code, str):
        raise InvalidInput("缺少 code", code="invalid_code")
    session = client.code_to_session(code)
    token, expires_in = wechat.sign_in(session.openid, session.unionid, session.session_key)
    return jsonify(token=token, expires_in=expires_in)


@blueprint.get("/accounts")
def list_accounts():
    return jsonify(server_time=utcnow().isoformat() + "Z", accounts=wechat.accounts(_user()))


@blueprint.get("/tickets/<ticket>")
def preview_ticket(ticket: str):
    return jsonify(wechat.preview(_user(), ticket))


@blueprint.post("/tickets/<ticket>/confirm")
def confirm_ticket(ticket: str):
    return jsonify(wechat.confirm(_user(), ticket))


@blueprint.post("/tickets/<ticket>/approve")
def approve_ticket(ticket: str):
    user = _user()  # authenticate first: without a token the answer is 401, whatever the body
    trust_device = _body().get("trust_device", False)
    if not isinstance(trust_device, bool):
        raise InvalidInput("trust_device 必须是 true 或 false", code="invalid_input")
    return jsonify(wechat.approve(user, ticket, trust_device))


@blueprint.post("/tickets/<ticket>/deny")
def deny_ticket(ticket: str):
    return jsonify(wechat.deny(_user(), ticket))
