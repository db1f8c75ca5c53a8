"""The 邮箱安全 App with an ECDSA P-256 key (ES256, as WebCrypto makes it), replay protection that
does not depend on how a signature is encoded, and the 扫码登录 ticket preview (DESIGN §5 "App device
API", "邮箱安全 App as a web app"; invariants 3, 8, 11)."""

from __future__ import annotations

import base64
import json

import pytest

from portal.models import Device, DeviceSignature, Factor
from portal.services import approvals, tickets
from tests.api.app_support import (
    API,
    AppDevice,
    P256Key,
    app_factor,
    app_ticket,
    b64,
    devices_of,
    enrolled,
    error_code,
    malleated,
    second_step_session,
)
from tests.api.support import BROWSER, browser_session, fresh

CHALLENGES = f"{API}/challenges"


def refused(response, status: int, code: str) -> None:
    assert (response.status_code, error_code(response)) == (status, code), response.get_data(as_text=True)


@pytest.fixture
def es_device(ctx, app, user) -> AppDevice:
    """alice's App, enrolled with a P-256 key."""
    return enrolled(app.test_client(), user, algorithm="ES256")


# --- ES256 enrollment and signed calls ---------------------------------------------------------


def test_enroll_with_a_p256_key(ctx, app, user):
    phone = AppDevice.es256(app.test_client())
    response = phone.enroll(app_ticket(browser_session(user), "bind").token)

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["account"], body["name"], body["vapid_public_key"]) == (user.account, "Alice", None)
    (device,) = devices_of(user)
    assert device.algorithm == "ES256"
    assert len(device.public_key) == 88 and base64.b64decode(device.public_key)[0] == 0x04
    assert app_factor(user).external_id == body["device_id"]


def test_an_ed25519_enrollment_records_its_algorithm(ctx, app, user):
    phone = AppDevice(app.test_client())
    response = phone.enroll(app_ticket(browser_session(user), "bind").token, algorithm="Ed25519")
    assert response.status_code == 200
    assert Device.get(Device.user == user).algorithm == "Ed25519"


def test_every_signed_call_works_with_es256(ctx, app, user, es_device):
    assert es_device.pending() == []

    push = app_ticket(second_step_session(user), "login", channel="push")
    (challenge,) = es_device.pending()
    assert challenge["id"] == push.ticket.id and challenge["name"] == "Alice"
    approved = es_device.approve(push.ticket.id, push.ticket.match_number)
    assert approved.get_json() == {"state": "approved", "purpose": "login"}

    denied = app_ticket(second_step_session(user), "verify", channel="push")
    assert es_device.deny(denied.ticket.id).get_json() == {"state": "denied", "purpose": "verify"}

    qr = app_ticket(second_step_session(user), "login")
    assert es_device.preview(qr.token).status_code == 200
    assert es_device.scan(qr.token).get_json() == {"state": "approved", "purpose": "login"}

    assert es_device.subscribe(_subscription()).get_json() == {"subscribed": True}
    assert es_device.call("DELETE", "/push-subscription").get_json() == {"subscribed": False}

    assert es_device.remove().get_json() == {"removed": True}
    assert devices_of(user) == [] and app_factor(user) is None


def test_an_es256_request_signed_by_another_p256_key_is_401(ctx, es_device):
    headers = es_device.signed("GET", CHALLENGES, key=P256Key())
    refused(es_device.send("GET", CHALLENGES, b"", headers), 401, "bad_signature")


def test_a_der_encoded_es256_signature_is_refused(ctx, es_device):
    """WebCrypto signs r||s; a DER signature (what OpenSSL gives) is not accepted in its place."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from portal.services.app_devices import signing_input

    headers = es_device.signed("GET", CHALLENGES)
    message = signing_input("GET", CHALLENGES, headers["X-Timestamp"], headers["X-Nonce"], b"")
    der = es_device.key.private.sign(message, ec.ECDSA(hashes.SHA256()))
    refused(es_device.send("GET", CHALLENGES, b"", {**headers, "X-Signature": b64(der)}), 401, "bad_signature")


def test_an_ed25519_signature_does_not_pass_for_an_es256_device(ctx, es_device):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    headers = es_device.signed("GET", CHALLENGES, key=Ed25519PrivateKey.generate())
    refused(es_device.send("GET", CHALLENGES, b"", headers), 401, "bad_signature")


def _p256_point_off_curve() -> str:
    raw = bytearray(P256Key().raw_public())
    raw[-1] ^= 1  # y no longer matches x
    return b64(bytes(raw))


def _compressed(phone: AppDevice) -> str:
    raw = phone.key.raw_public()
    return b64(bytes([2 + (raw[-1] & 1)]) + raw[1:33])


BAD_ES256 = {
    "key is an Ed25519 key": (lambda p, t: {"public_key": b64(b"k" * 32)}, 400, "invalid_key"),
    "key off the curve": (lambda p, t: {"public_key": _p256_point_off_curve()}, 400, "invalid_key"),
    "key compressed": (lambda p, t: {"public_key": _compressed(p)}, 400, "invalid_key"),
    "key without the 0x04 prefix": (lambda p, t: {"public_key": b64(p.key.raw_public()[1:])}, 400, "invalid_key"),
    "key not base64": (lambda p, t: {"public_key": "%" * 88}, 400, "invalid_key"),
    "unknown algorithm": (lambda p, t: {"algorithm": "RS256"}, 400, "invalid_key"),
    "algorithm in lower case": (lambda p, t: {"algorithm": "es256"}, 400, "invalid_key"),
    "algorithm not a string": (lambda p, t: {"algorithm": 7}, 400, "invalid_key"),
    "proof by another key": (
        lambda p, t: {"proof": b64(P256Key().sign(f"enroll\n{t}".encode()))},
        401,
        "bad_signature",
    ),
    "proof truncated": (lambda p, t: {"proof": b64(p.key.sign(f"enroll\n{t}".encode())[:63])}, 401, "bad_signature"),
    "proof all zero": (lambda p, t: {"proof": b64(bytes(64))}, 401, "bad_signature"),
    "proof not base64": (lambda p, t: {"proof": "***"}, 401, "bad_signature"),
}


@pytest.mark.parametrize("case", list(BAD_ES256))
def test_a_malformed_es256_key_or_proof_writes_nothing(ctx, app, user, case):
    make, status, code = BAD_ES256[case]
    new = app_ticket(browser_session(user), "bind")
    phone = AppDevice.es256(app.test_client())
    body = phone.enroll_body(new.token, **make(phone, new.token))

    refused(phone.client.post(f"{API}/enroll", json=body), status, code)
    assert devices_of(user) == [] and app_factor(user) is None
    assert fresh(new.ticket).state == "pending"


def test_an_ed25519_key_named_es256_is_refused_the_other_way_round(ctx, app, user):
    new = app_ticket(browser_session(user), "bind")
    phone = AppDevice.es256(app.test_client())
    body = phone.enroll_body(new.token, algorithm="Ed25519")  # a P-256 point is not a 32-byte key
    refused(phone.client.post(f"{API}/enroll", json=body), 400, "invalid_key")


def test_an_existing_ed25519_device_without_an_algorithm_column_value_keeps_working(ctx, app, user):
    device = enrolled(app.test_client(), user)
    assert Device.get(Device.device_id == device.device_id).algorithm == "Ed25519"
    assert device.call("GET", "/challenges").status_code == 200


# --- replay protection that does not depend on the signature's bytes ----------------------------


def test_a_replay_with_the_malleated_ecdsa_signature_is_refused(ctx, es_device, user):
    """(r, n − s) is a second valid signature of the same request: it is still the same request."""
    push = app_ticket(second_step_session(user), "login", channel="push")
    path = f"{API}/challenges/{push.ticket.id}/deny"
    body = json.dumps({"reason": "declined"}).encode()
    headers = es_device.signed("POST", path, body)
    twin = b64(malleated(base64.b64decode(headers["X-Signature"])))
    assert twin != headers["X-Signature"]
    assert es_device.send("POST", path, body, headers).status_code == 200
    tickets_reset = {"state": "pending", "decided_at": None, "approver": ""}
    type(push.ticket).update(**tickets_reset).where(type(push.ticket).id == push.ticket.id).execute()

    refused(es_device.send("POST", path, body, {**headers, "X-Signature": twin}), 401, "replayed_request")
    assert fresh(push.ticket).state == "pending"


def test_the_malleated_signature_is_itself_valid(ctx, es_device):
    """So the refusal above is the replay check, not a bad signature: sent first, the twin passes."""
    headers = es_device.signed("GET", CHALLENGES)
    twin = b64(malleated(base64.b64decode(headers["X-Signature"])))
    assert es_device.send("GET", CHALLENGES, b"", {**headers, "X-Signature": twin}).status_code == 200
    refused(es_device.send("GET", CHALLENGES, b"", headers), 401, "replayed_request")
    assert DeviceSignature.select().count() == 1


def test_the_same_signed_input_of_two_devices_is_not_one_request(ctx, app, user, bob, es_device):
    """The one-use row names the device too: another device's identical request is its own."""
    other = enrolled(app.test_client(), bob, algorithm="ES256")
    timestamp, nonce = es_device.signed("GET", CHALLENGES)["X-Timestamp"], "n" * 20
    mine = es_device.signed("GET", CHALLENGES, timestamp=timestamp, nonce=nonce)
    theirs = other.signed("GET", CHALLENGES, timestamp=timestamp, nonce=nonce)
    assert es_device.send("GET", CHALLENGES, b"", mine).status_code == 200
    assert other.send("GET", CHALLENGES, b"", theirs).status_code == 200


# --- 扫码登录: the ticket preview ------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["Ed25519", "ES256"])
@pytest.mark.parametrize("purpose", ["login", "unbind", "rebind", "verify"])
def test_preview_of_a_qr_ticket(ctx, app, user, purpose, algorithm):
    phone = enrolled(app.test_client(), user, algorithm=algorithm)
    qr = app_ticket(second_step_session(user), purpose)

    response = phone.preview(qr.url)

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"purpose", "account", "name", "request", "expires_in"}
    assert (body["purpose"], body["account"], body["name"]) == (purpose, user.account, "Alice")
    assert body["request"] == tickets.describe(qr.ticket)
    assert body["request"]["ip"] == BROWSER.ip
    assert 0 < body["expires_in"] <= 120
    assert fresh(qr.ticket).state == "pending"  # a look decides nothing


def test_preview_of_a_bind_qr_or_a_push_is_the_wrong_purpose(ctx, user, es_device):
    bind = app_ticket(browser_session(user), "bind")
    refused(es_device.preview(bind.token), 400, "wrong_purpose")
    push = app_ticket(second_step_session(user), "login", channel="push")
    refused(es_device.preview(push.token), 400, "wrong_purpose")


def test_preview_of_another_accounts_qr_is_403(ctx, app, bob, es_device):
    qr = app_ticket(second_step_session(bob), "login")
    refused(es_device.preview(qr.token), 403, "not_bound_to_you")


def test_preview_of_an_unknown_or_expired_qr(ctx, user, es_device):
    from datetime import timedelta

    from portal.models import Ticket, utcnow

    refused(es_device.preview("no-such-ticket"), 404, "ticket_not_found")
    qr = app_ticket(second_step_session(user), "login")
    Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).where(Ticket.id == qr.ticket.id).execute()
    refused(es_device.preview(qr.token), 410, "ticket_expired")


def test_preview_of_a_logged_out_browsers_qr_is_409(ctx, user, es_device):
    from portal.services import sessions

    session = second_step_session(user)
    qr = app_ticket(session, "login")
    sessions.end(session, "logout")
    refused(es_device.preview(qr.token), 409, "session_ended")


def test_preview_needs_a_signature(ctx, app, user, es_device):
    qr = app_ticket(second_step_session(user), "login")
    refused(app.test_client().get(f"{API}/tickets/{qr.token}"), 401, "device_unknown")


def test_pending_names_the_account_holder(ctx, app, user, es_device):
    approvals.push(second_step_session(user), user, "login", "app", BROWSER, resend=False)
    (challenge,) = es_device.pending()
    assert challenge["name"] == "Alice"
    assert Factor.get(Factor.user == user).method == "app"


def _subscription() -> dict:
    point = P256Key().raw_public()
    return {
        "endpoint": "https://push.example.net/wpush/v2/abc",
        "keys": {"p256dh": base64.urlsafe_b64encode(point).rstrip(b"=").decode(), "auth": "AAAAAAAAAAAAAAAAAAAAAA"},
    }
