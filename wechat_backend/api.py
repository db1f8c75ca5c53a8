"""/api/wx/v1: JSON in and out, Authorization: Bearer <token>, errors as {"error": {code, message}}."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask_babel import gettext as _

from portal import json_api
from portal.models import utcnow
from portal.services import wechat
from portal.services.errors import InvalidInput
from wechat_backend import client

blueprint = Blueprint("wx_api", __name__, url_prefix="/api/wx/v1")


json_api.use_envelope(blueprint)


def _user():
    header = request.headers.get("Authorization", "")
    scheme, _space, token = header.partition(" ")
    return wechat.authenticate(token.strip() if scheme.lower() == "bearer" else None)


@blueprint.post("/session")
def create_session():
    code = json_api.body().get("code")
    if not isinstance(code, str):
        raise InvalidInput(_("缺少 code"), code="invalid_code")
    session = client.code_to_session(code)
    token, expires_in = wechat.sign_in(session.appid, session.openid, session.unionid, session.session_key)
    return jsonify(token=token, expires_in=expires_in)


@blueprint.get("/accounts")
def list_accounts():
    return jsonify(server_time=utcnow().isoformat() + "Z", accounts=wechat.accounts(_user()))


@blueprint.get("/tickets/<ticket>")
def preview_ticket(ticket: str):
    return jsonify(wechat.preview(_user(), ticket))


@blueprint.post("/tickets/<ticket>/confirm")
def confirm_ticket(ticket: str):
    return jsonify(wechat.confirm(_user(), ticket, g.client))


@blueprint.post("/tickets/<ticket>/approve")
def approve_ticket(ticket: str):
    user = _user()  # authenticate first: without a token the answer is 401, whatever the body
    trust_device = json_api.flag(json_api.body(), "trust_device")
    return jsonify(wechat.approve(user, ticket, trust_device, g.client))


@blueprint.post("/tickets/<ticket>/deny")
def deny_ticket(ticket: str):
    return jsonify(wechat.deny(_user(), ticket, g.client))
