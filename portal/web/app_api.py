"""/api/app/v1: the 邮箱安全 App's device API (JSON; requests signed with the device key)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask_babel import gettext as _

from portal import json_api
from portal.services import app_devices, web_push
from portal.services.errors import InvalidInput

bp = Blueprint("app_api", __name__, url_prefix="/api/app/v1")
SIGNED_HEADERS = ("X-Device-Id", "X-Timestamp", "X-Nonce", "X-Signature")
UNSIGNED = {"app_api.enroll", "app_api.push_key"}  # before the App has a key, or public anyway


json_api.use_envelope(bp)


@bp.before_request
def _authenticate():
    """Every route but enrollment and the push key needs a valid signature from an enrolled device."""
    if request.endpoint in UNSIGNED:
        return
    device_id, timestamp, nonce, signature = (request.headers.get(name, "") for name in SIGNED_HEADERS)
    g.device = app_devices.authenticate(
        app_devices.SignedRequest(
            device_id, timestamp, nonce, signature, request.method, request.path, request.get_data(cache=True)
        )
    )


def _text(body: dict, key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise InvalidInput(_("%(field)s 必须是字符串", field=key), code="invalid_input")
    return value


@bp.post("/enroll")
def enroll():
    body = json_api.body()
    ticket, key, name, platform, proof = (_text(body, k) for k in ("ticket", "public_key", "name", "platform", "proof"))
    return jsonify(app_devices.enroll(ticket, key, name, platform, proof, g.client, body.get("algorithm")))


@bp.get("/push-key")
def push_key():
    return jsonify(vapid_public_key=web_push.public_key())


@bp.put("/push-subscription")
def subscribe():
    web_push.subscribe(g.device, json_api.body())
    return jsonify(subscribed=True)


@bp.delete("/push-subscription")
def unsubscribe():
    web_push.unsubscribe(g.device)
    return jsonify(subscribed=False)


@bp.get("/challenges")
def challenges():
    return jsonify(challenges=app_devices.pending(g.device))


@bp.post("/challenges/<int(max=2147483647):challenge_id>/approve")
def approve(challenge_id: int):
    return jsonify(app_devices.approve(g.device, challenge_id, json_api.body().get("number"), g.client))


@bp.post("/challenges/<int(max=2147483647):challenge_id>/deny")
def deny(challenge_id: int):
    return jsonify(app_devices.deny(g.device, challenge_id, _text(json_api.body(), "reason"), g.client))


@bp.get("/tickets/<ticket>")
def preview_ticket(ticket: str):
    return jsonify(app_devices.preview_scan(g.device, ticket))


@bp.post("/tickets/<ticket>/approve")
def approve_ticket(ticket: str):
    trust_device = json_api.flag(json_api.body(), "trust_device")
    return jsonify(app_devices.approve_scan(g.device, ticket, trust_device, g.client))


@bp.delete("/device")
def remove_device():
    app_devices.remove(g.device, g.client)
    return jsonify(removed=True)
