"""The 邮箱安全 App device API (/api/app/v1): enrollment, signed requests, push challenges with
number matching, QR approval and removal (DESIGN §5 "App device API"; invariants 3, 8, 10, 11)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal import crypto
from portal.models import AuditEvent, Device, DeviceSignature, Factor, Grant, Ticket, utcnow
from portal.services import accounts, app_devices, approvals, audit, factors, policy, sessions, throttle, tickets, trust
from portal.services.errors import Throttled
from tests.api.app_support import (
    API,
    AppDevice,
    app_factor,
    app_ticket,
    b64,
    devices_of,
    enrolled,
    error_code,
    second_step_session,
)
from tests.api.support import BROWSER, browser_session, fresh, new_ticket, run_threads
from tests.conftest import PASSWORD


@pytest.fixture
def device(ctx, app, user) -> AppDevice:
    """alice's enrolled App."""
    return enrolled(app.test_client(), user)


@pytest.fixture
def bobs_device(ctx, app, bob) -> AppDevice:
    return enrolled(app.test_client(), bob, name="iPhone 15", platform="iOS")


@pytest.fixture
def push(ctx, user, device):
    """A login push challenge waiting for alice's App (her browser is at the second step)."""
    return app_ticket(second_step_session(user), "login", channel="push")


def undecided(ticket: Ticket) -> bool:
    row = fresh(ticket)
    return row.state in ("pending", "scanned") and row.approver == "" and row.decided_at is None


def refused(response, status: int, code: str) -> None:
    assert (response.status_code, error_code(response)) == (status, code), response.get_data(as_text=True)


def expire(ticket: Ticket) -> None:
    Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).where(Ticket.id == ticket.id).execute()


# --- enrollment ---------------------------------------------------------------------------------


def test_enroll_binds_the_app_and_returns_the_seed(ctx, app, user):
    new = app_ticket(browser_session(user), "bind")
    phone = AppDevice(app.test_client())

    response = phone.enroll(new.token, "EML-AL00", "Android")

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["account"] == user.account
    assert (body["period"], body["digits"]) == (30, 6)
    assert body["device_id"].startswith("dev_")
    (device,) = devices_of(user)
    assert (device.device_id, device.name, device.platform) == (body["device_id"], "EML-AL00", "Android")
    assert device.public_key == phone.enroll_body("x")["public_key"]
    factor = app_factor(user)
    assert factor.label == "EML-AL00 (Android)"
    assert factor.external_id == body["device_id"]
    assert crypto.decrypt(factor.secret) == body["totp_secret"]
    assert body["totp_secret"] not in factor.secret  # stored encrypted
    assert pyotp.TOTP(body["totp_secret"]).now().isdigit()  # a usable RFC 6238 base32 seed
    row = fresh(new.ticket)
    assert (row.state, row.approver) == ("approved", body["device_id"])
    event = AuditEvent.get(AuditEvent.event == "factor_bound")
    assert (event.method, event.account) == ("app", user.account)
    assert body["device_id"] in event.detail


def test_enroll_in_a_forced_binding_session(ctx, app, user):
    new = app_ticket(browser_session(user, sessions.BINDING), "bind")
    assert AppDevice(app.test_client()).enroll(new.token).status_code == 200
    assert app_factor(user) is not None


def test_the_label_is_cleaned_and_cut(ctx, app, user):
    new = app_ticket(browser_session(user), "bind")
    response = AppDevice(app.test_client()).enroll(new.token, "My\x00 Phone\n" + "x" * 100, " iOS\t")
    assert response.status_code == 200
    device = Device.get(Device.user == user)
    assert device.name == "My Phone" + "x" * 52  # printable characters only, 60 at most
    assert device.platform == "iOS"
    assert app_factor(user).label == f"{device.name} (iOS)"


def _other_key(phone: AppDevice, ticket: str) -> dict:
    return {"proof": b64(Ed25519PrivateKey.generate().sign(f"enroll\n{ticket}".encode()))}


def _other_ticket(phone: AppDevice, ticket: str) -> dict:
    return {"proof": b64(phone.key.sign(b"enroll\nsome-other-ticket"))}


def _unprefixed(phone: AppDevice, ticket: str) -> dict:
    return {"proof": b64(phone.key.sign(ticket.encode()))}


BAD_PROOFS = {
    "signed by another key": (_other_key, 401, "bad_signature"),
    "signed over another ticket": (_other_ticket, 401, "bad_signature"),
    "signed without the enroll prefix": (_unprefixed, 401, "bad_signature"),
    "proof not base64": (lambda p, t: {"proof": "not base64!"}, 401, "bad_signature"),
    "proof empty": (lambda p, t: {"proof": ""}, 401, "bad_signature"),
    "proof truncated": (lambda p, t: {"proof": b64(p.key.sign(f"enroll\n{t}".encode())[:32])}, 401, "bad_signature"),
    "key not base64": (lambda p, t: {"public_key": "%%%"}, 400, "invalid_key"),
    "key too short": (lambda p, t: {"public_key": b64(b"k" * 31)}, 400, "invalid_key"),
    "key too long": (lambda p, t: {"public_key": b64(b"k" * 33)}, 400, "invalid_key"),
    "key empty": (lambda p, t: {"public_key": ""}, 400, "invalid_key"),
    "key with excess padding": (lambda p, t: {"public_key": b64(b"k" * 32) + "=" * 30}, 400, "invalid_key"),
}


@pytest.mark.parametrize("case", list(BAD_PROOFS))
def test_a_bad_proof_or_key_writes_nothing(ctx, app, user, case):
    make, status, code = BAD_PROOFS[case]
    new = app_ticket(browser_session(user), "bind")
    phone = AppDevice(app.test_client())

    response = phone.enroll(new.token, **make(phone, new.token))

    refused(response, status, code)
    assert undecided(new.ticket)
    assert (Device.select().count(), app_factor(user)) == (0, None)
    assert not AuditEvent.select().where(AuditEvent.event == "factor_bound").exists()


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"data": b"not json", "content_type": "application/json"}, "invalid_json"),
        ({"json": ["a", "list"]}, "invalid_json"),
        ({"json": {"ticket": 5, "public_key": "", "name": "", "platform": "", "proof": ""}}, "invalid_input"),
        ({"json": {"ticket": "t", "public_key": "", "name": ["x"], "platform": "", "proof": ""}}, "invalid_input"),
    ],
)
def test_a_malformed_enroll_body_is_400(ctx, app, user, kwargs, code):
    response = app.test_client().post(f"{API}/enroll", **kwargs)
    refused(response, 400, code)
    assert Device.select().count() == 0


@pytest.mark.parametrize("ticket", ["no-such-ticket", "x" * 200])
def test_an_unknown_bind_ticket_is_404(ctx, app, ticket):
    refused(AppDevice(app.test_client()).enroll(ticket), 404, "ticket_not_found")
    assert Device.select().count() == 0


def test_a_wechat_bind_ticket_does_not_enroll_an_app(ctx, app, user):
    new = new_ticket(browser_session(user), "bind")
    refused(AppDevice(app.test_client()).enroll(new.token), 404, "ticket_not_found")
    assert undecided(new.ticket)


def test_the_bind_qr_is_single_use(ctx, app, user):
    new = app_ticket(browser_session(user), "bind")
    assert AppDevice(app.test_client()).enroll(new.token).status_code == 200

    second = AppDevice(app.test_client())
    refused(second.enroll(new.token, "Second"), 409, "ticket_used")

    assert len(devices_of(user)) == 1
    assert app_factor(user).label == "EML-AL00 (Android)"


def test_an_expired_bind_qr_is_410(ctx, app, user):
    new = app_ticket(browser_session(user), "bind")
    expire(new.ticket)
    refused(AppDevice(app.test_client()).enroll(new.token), 410, "ticket_expired")
    assert (devices_of(user), app_factor(user)) == ([], None)


@pytest.mark.parametrize("purpose", ["login", "unbind", "rebind"])
def test_only_a_bind_ticket_enrolls(ctx, app, user, purpose):
    new = app_ticket(browser_session(user, sessions.SECOND_FACTOR), purpose, target="app")
    refused(AppDevice(app.test_client()).enroll(new.token), 400, "wrong_purpose")
    assert undecided(new.ticket)
    assert devices_of(user) == []


def test_a_bind_qr_of_a_logged_out_browser_is_dead(ctx, app, user):
    session = browser_session(user)
    new = app_ticket(session, "bind")
    sessions.end(session, "logout")
    refused(AppDevice(app.test_client()).enroll(new.token), 409, "session_ended")
    assert devices_of(user) == []


def test_a_bind_qr_of_a_half_logged_in_browser_is_refused(ctx, app, user):
    """Binding needs a full (or forced-binding) session (invariant 7), as for 微信."""
    new = app_ticket(browser_session(user, sessions.SECOND_FACTOR), "bind")
    refused(AppDevice(app.test_client()).enroll(new.token), 403, "session_not_full")
    assert undecided(new.ticket)
    assert devices_of(user) == []


def test_a_second_app_without_change_is_409(ctx, app, user):
    """Two browsers showed the bind QR; once one App enrolled, the other QR cannot bind a second App."""
    first_qr = app_ticket(browser_session(user), "bind")
    second_qr = app_ticket(browser_session(user), "bind")
    first = AppDevice(app.test_client())
    assert first.enroll(first_qr.token).status_code == 200

    refused(AppDevice(app.test_client()).enroll(second_qr.token, "Other"), 409, "already_bound")

    assert undecided(second_qr.ticket)  # rolled back: not left approved
    assert [d.device_id for d in devices_of(user)] == [first.device_id]
    assert app_factor(user).external_id == first.device_id
    assert first.call("GET", "/challenges").status_code == 200


def test_one_device_per_account_but_accounts_have_their_own(ctx, app, user, bob, device, bobs_device):
    assert app_factor(user).external_id == device.device_id
    assert app_factor(bob).external_id == bobs_device.device_id
    assert app_factor(bob).label == "iPhone 15 (iOS)"


# --- 修改: the new App replaces the old one only when it enrolls --------------------------------


def test_rebind_replaces_the_old_device_only_when_the_new_one_enrolls(ctx, app, user, device):
    session = browser_session(user)
    trusted = trust.issue(user, BROWSER, "app")
    factors.grant_change(session, "app")
    qr = app_ticket(session, "bind", replaces=True)

    # Until the new App enrolls, the old one keeps working (an abandoned 修改 changes nothing).
    assert device.call("GET", "/challenges").status_code == 200
    assert app_factor(user).external_id == device.device_id

    new_phone = AppDevice(app.test_client())
    response = new_phone.enroll(qr.token, "Mate 60", "HarmonyOS")

    assert response.status_code == 200, response.get_data(as_text=True)
    (factor,) = Factor.select().where((Factor.user == user) & (Factor.method == "app"))
    assert (factor.external_id, factor.label) == (new_phone.device_id, "Mate 60 (HarmonyOS)")
    assert crypto.decrypt(factor.secret) == new_phone.totp_secret != device.totp_secret
    refused(device.call("GET", "/challenges"), 401, "device_unknown")
    assert new_phone.call("GET", "/challenges").status_code == 200
    assert not trust.is_trusted(trusted, user)  # changing a factor revokes trusted devices
    assert Grant.get(Grant.session == session).used_at is not None
    assert AuditEvent.select().where(AuditEvent.event == "factor_changed").count() == 1


@pytest.mark.parametrize("grant", ["none", "used", "expired", "other session"])
def test_rebind_without_a_live_grant_is_410_and_keeps_the_old_device(ctx, app, user, device, grant):
    session = browser_session(user)
    qr = app_ticket(session, "bind", replaces=True)
    if grant == "used":
        Grant.create(
            session=session, purpose="change:app", expires_at=utcnow() + timedelta(minutes=5), used_at=utcnow()
        )
    elif grant == "expired":
        Grant.create(session=session, purpose="change:app", expires_at=utcnow() - timedelta(seconds=1))
    elif grant == "other session":
        factors.grant_change(browser_session(user), "app")

    refused(AppDevice(app.test_client()).enroll(qr.token), 410, "grant_expired")

    assert undecided(qr.ticket)
    assert app_factor(user).external_id == device.device_id
    assert device.call("GET", "/challenges").status_code == 200


# --- signed requests ----------------------------------------------------------------------------

CHALLENGES = f"{API}/challenges"


def test_a_signed_request_is_accepted_and_recorded(ctx, device):
    before = Device.get(Device.device_id == device.device_id).last_seen_at
    response = device.call("GET", "/challenges")
    assert response.status_code == 200
    assert response.get_json() == {"challenges": []}
    assert DeviceSignature.select().count() == 1
    assert Device.get(Device.device_id == device.device_id).last_seen_at >= before


@pytest.mark.parametrize("device_id", [None, "", "dev_nobody", "x" * 5000])
def test_a_request_from_an_unknown_device_is_401(ctx, device, device_id):
    headers = device.signed("GET", CHALLENGES)
    if device_id is None:
        headers = {}
    else:
        headers["X-Device-Id"] = device_id
    refused(device.send("GET", CHALLENGES, b"", headers), 401, "device_unknown")


@pytest.mark.parametrize("missing", ["X-Timestamp", "X-Nonce", "X-Signature"])
def test_a_request_missing_a_header_is_401(ctx, device, missing):
    headers = device.signed("GET", CHALLENGES)
    del headers[missing]
    code = {"X-Timestamp": "bad_timestamp", "X-Nonce": "bad_nonce", "X-Signature": "bad_signature"}[missing]
    refused(device.send("GET", CHALLENGES, b"", headers), 401, code)


def test_a_request_signed_by_another_key_is_401(ctx, device):
    headers = device.signed("GET", CHALLENGES, key=Ed25519PrivateKey.generate())
    refused(device.send("GET", CHALLENGES, b"", headers), 401, "bad_signature")


def test_another_devices_id_with_my_key_is_401(ctx, device, bobs_device):
    headers = device.signed("GET", CHALLENGES)
    headers["X-Device-Id"] = bobs_device.device_id
    refused(device.send("GET", CHALLENGES, b"", headers), 401, "bad_signature")


def _deny_path(push) -> str:
    return f"{API}/challenges/{push.ticket.id}/deny"


def _tampered(part: str, device: AppDevice, path: str, body: bytes):
    """A request signed for (POST, path, body), with one part changed on the way."""
    headers = device.signed("POST", path, body)
    sent_path, sent_body = path, body
    if part == "body":
        sent_body = b'{"reason": "declined"}'
    elif part == "path":
        sent_path = path.replace("/deny", "/approve")
    elif part == "method":
        headers = device.signed("GET", path, body)
    elif part == "timestamp":
        headers["X-Timestamp"] = str(int(headers["X-Timestamp"]) - 1)
    elif part == "nonce":
        headers["X-Nonce"] += "x"
    elif part == "signature":
        headers["X-Signature"] = b64(bytes(64))
    elif part == "signature not base64":
        headers["X-Signature"] = "***"
    return device.send("POST", sent_path, sent_body, headers)


@pytest.mark.parametrize("part", ["body", "path", "method", "timestamp", "nonce", "signature", "signature not base64"])
def test_a_tampered_request_is_401_and_changes_nothing(ctx, device, push, part):
    path, body = _deny_path(push), json.dumps({"reason": "not_me"}).encode()

    response = _tampered(part, device, path, body)

    refused(response, 401, "bad_signature")
    assert undecided(push.ticket)
    assert fresh(push.ticket).deny_reason == ""
    assert DeviceSignature.select().count() == 0


@pytest.mark.parametrize("offset", [-61, 61, -3600, 10**6])
def test_a_stale_timestamp_is_401(ctx, device, monkeypatch, offset):
    signed_at = 1_800_000_000
    headers = device.signed("GET", CHALLENGES, timestamp=str(signed_at))
    monkeypatch.setattr(app_devices, "time", SimpleNamespace(time=lambda: signed_at - offset + 0.5))
    refused(device.send("GET", CHALLENGES, b"", headers), 401, "stale_request")
    assert DeviceSignature.select().count() == 0


@pytest.mark.parametrize("offset", [-60, 0, 60])
def test_a_timestamp_within_60_seconds_is_accepted(ctx, device, monkeypatch, offset):
    signed_at = 1_800_000_000
    headers = device.signed("GET", CHALLENGES, timestamp=str(signed_at))
    monkeypatch.setattr(app_devices, "time", SimpleNamespace(time=lambda: signed_at - offset + 0.5))
    assert device.send("GET", CHALLENGES, b"", headers).status_code == 200


@pytest.mark.parametrize("timestamp", ["", "soon", "1.5e9", "0x6b49d200"])
def test_a_malformed_timestamp_is_401(ctx, device, timestamp):
    headers = device.signed("GET", CHALLENGES, timestamp=timestamp)
    refused(device.send("GET", CHALLENGES, b"", headers), 401, "bad_timestamp")


@pytest.mark.parametrize(("nonce", "ok"), [("n" * 15, False), ("", False), ("n" * 65, False), ("n" * 16, True)])
def test_the_nonce_must_be_16_to_64_characters(ctx, device, nonce, ok):
    headers = device.signed("GET", CHALLENGES, nonce=nonce)
    response = device.send("GET", CHALLENGES, b"", headers)
    if ok:
        assert response.status_code == 200
    else:
        refused(response, 401, "bad_nonce")


def test_an_exact_replay_is_401(ctx, device, push):
    path, body = _deny_path(push), json.dumps({"reason": "declined"}).encode()
    headers = device.signed("POST", path, body)
    assert device.send("POST", path, body, headers).status_code == 200
    # Put the ticket back so that only the replay check can refuse the copy.
    Ticket.update(state="pending", decided_at=None, approver="").where(Ticket.id == push.ticket.id).execute()

    refused(device.send("POST", path, body, headers), 401, "replayed_request")
    assert fresh(push.ticket).state == "pending"


def test_a_replayed_read_is_401(ctx, device):
    headers = device.signed("GET", CHALLENGES)
    assert device.send("GET", CHALLENGES, b"", headers).status_code == 200
    refused(device.send("GET", CHALLENGES, b"", headers), 401, "replayed_request")


def test_a_replay_with_the_signature_spelled_differently_is_401(ctx, device):
    """Base64 has spare bits: the same signature bytes have several spellings; all are one signature."""
    headers = device.signed("GET", CHALLENGES)
    assert device.send("GET", CHALLENGES, b"", headers).status_code == 200
    spelled = headers["X-Signature"]
    assert spelled.endswith("==")
    last = spelled[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    variant = spelled[:-3] + alphabet[alphabet.index(last) ^ 1] + "=="
    assert base64.b64decode(variant) == base64.b64decode(spelled)

    refused(device.send("GET", CHALLENGES, b"", {**headers, "X-Signature": variant}), 401, "replayed_request")


def test_two_requests_in_the_same_second_both_pass(ctx, device):
    now = str(int(datetime.now(UTC).timestamp()))
    first = device.signed("GET", CHALLENGES, timestamp=now)
    second = device.signed("GET", CHALLENGES, timestamp=now)
    assert first["X-Nonce"] != second["X-Nonce"]
    assert device.send("GET", CHALLENGES, b"", first).status_code == 200
    assert device.send("GET", CHALLENGES, b"", second).status_code == 200
    assert DeviceSignature.select().count() == 2


def test_an_unknown_route_answers_json(ctx, device, app):
    refused(app.test_client().get(f"{API}/nothing-here"), 404, "not_found")
    refused(device.call("GET", "/nothing-here"), 404, "not_found")
    refused(device.call("PUT", "/challenges"), 405, "method_not_allowed")


def test_a_body_that_is_not_a_json_object_is_400(ctx, device, push):
    path = f"{API}/challenges/{push.ticket.id}/approve"
    for body in (b"[1, 2]", b"{not json"):
        refused(device.send("POST", path, body, device.signed("POST", path, body)), 400, "invalid_json")
    assert undecided(push.ticket)


# --- push challenges (打开 App 确认授权, number matching) ------------------------------------------


def test_pending_lists_the_push_with_number_choices_and_context(ctx, user, device, push):
    (challenge,) = device.pending()

    assert challenge["id"] == push.ticket.id
    assert (challenge["purpose"], challenge["account"]) == ("login", user.account)
    choices = challenge["choices"]
    assert len(choices) == 3 == len(set(choices))
    assert push.ticket.match_number in choices
    assert all(isinstance(n, int) and 10 <= n <= 99 for n in choices)
    request = challenge["request"]
    assert (request["ip"], request["browser"], request["os"]) == (BROWSER.ip, "Chrome 120", "Windows")
    shown = datetime.fromisoformat(request["time"].replace("Z", "+00:00"))
    assert shown == push.ticket.created_at.replace(tzinfo=UTC)
    assert 100 <= challenge["expires_in"] <= 120


def test_the_number_is_not_always_the_first_choice(ctx, user, device):
    session = second_step_session(user)
    positions = set()
    for _ in range(40):
        new = app_ticket(session, "login", channel="push")
        positions.add(new.ticket.choices.split(",").index(str(new.ticket.match_number)))
    assert len(positions) > 1


def test_pending_lists_only_open_pushes(ctx, user, device, push):
    qr_login = app_ticket(second_step_session(user), "login")  # a QR, not a push
    unbind_push = app_ticket(browser_session(user), "unbind", channel="push", target="app")
    expired_push = app_ticket(second_step_session(user), "login", channel="push")
    expire(expired_push.ticket)
    denied_push = app_ticket(second_step_session(user), "login", channel="push")
    assert device.deny(denied_push.ticket.id).status_code == 200

    listed = device.pending()

    assert [c["id"] for c in listed] == [unbind_push.ticket.id, push.ticket.id]  # newest first
    assert listed[0]["purpose"] == "unbind"
    assert qr_login.ticket.id not in {c["id"] for c in listed}


def test_a_push_of_a_logged_out_browser_is_not_listed_nor_approvable(ctx, user, device):
    session = second_step_session(user)
    new = app_ticket(session, "login", channel="push")
    sessions.end(session, "logout")

    assert device.pending() == []
    refused(device.approve(new.ticket.id, new.ticket.match_number), 409, "session_ended")
    assert undecided(new.ticket)


def test_approve_with_the_right_number(ctx, user, device, push):
    response = device.approve(push.ticket.id, push.ticket.match_number)

    assert response.status_code == 200
    assert response.get_json() == {"state": "approved", "purpose": "login"}
    row = fresh(push.ticket)
    assert (row.state, row.approver, row.trust_device) == ("approved", device.device_id, False)
    event = AuditEvent.get(AuditEvent.event == "app_login_approved")
    assert (event.outcome, event.method, event.account, event.detail) == ("ok", "app", user.account, "push")
    assert device.pending() == []


def test_a_wrong_number_denies_the_challenge(ctx, user, device, push):
    wrong = next(n for n in fresh(push.ticket).choices.split(",") if int(n) != push.ticket.match_number)

    refused(device.approve(push.ticket.id, int(wrong)), 409, "number_mismatch")

    row = fresh(push.ticket)
    assert (row.state, row.deny_reason, row.approver) == ("denied", "number_mismatch", device.device_id)
    event = AuditEvent.get(AuditEvent.event == "app_login_denied")
    assert (event.outcome, event.detail) == ("denied", "number_mismatch")
    # One guess only: the right number afterwards is too late.
    refused(device.approve(push.ticket.id, push.ticket.match_number), 409, "ticket_used")
    assert fresh(push.ticket).state == "denied"


@pytest.mark.parametrize("number", [None, "42", 42.0, True, [42]])
def test_a_number_that_is_not_an_integer_is_400_and_keeps_the_challenge(ctx, device, push, number):
    if number == "42":
        number = str(push.ticket.match_number)
    refused(device.approve(push.ticket.id, number), 400, "invalid_input")
    assert undecided(push.ticket)


def test_deny_not_me_is_audited(ctx, user, device, push):
    response = device.deny(push.ticket.id, "not_me")

    assert response.status_code == 200
    assert response.get_json() == {"state": "denied", "purpose": "login"}
    row = fresh(push.ticket)
    assert (row.state, row.deny_reason) == ("denied", "not_me")
    event = AuditEvent.get(AuditEvent.event == "app_login_denied")
    assert (event.outcome, event.method, event.account) == ("not_me", "app", user.account)
    assert audit.recent_not_me(user) == 1


def test_the_apps_decision_is_audited_with_its_address_and_agent(ctx, device, push):
    path, body = _deny_path(push), json.dumps({"reason": "not_me"}).encode()
    headers = {**device.signed("POST", path, body), "Content-Type": "application/json", "User-Agent": "XAMD-2FA/1.0"}
    response = device.client.open(
        path, method="POST", data=body, headers=headers, environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert response.status_code == 200
    event = AuditEvent.get(AuditEvent.event == "app_login_denied")
    assert (event.ip, event.user_agent) == ("203.0.113.9", "XAMD-2FA/1.0")


@pytest.mark.parametrize("reason", ["", "declined", "anything else"])
def test_deny_without_not_me_is_declined(ctx, user, device, push, reason):
    assert device.deny(push.ticket.id, reason).status_code == 200
    assert fresh(push.ticket).deny_reason == "declined"
    assert AuditEvent.get(AuditEvent.event == "app_login_denied").outcome == "denied"
    assert audit.recent_not_me(user) == 0


def test_deny_reason_must_be_a_string(ctx, device, push):
    refused(device.call("POST", f"/challenges/{push.ticket.id}/deny", {"reason": 1}), 400, "invalid_input")
    assert undecided(push.ticket)


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_an_expired_challenge_is_410_and_not_listed(ctx, device, push, action):
    expire(push.ticket)
    assert device.pending() == []
    response = (
        device.approve(push.ticket.id, push.ticket.match_number) if action == "approve" else device.deny(push.ticket.id)
    )
    refused(response, 410, "challenge_expired")
    assert undecided(push.ticket)


@pytest.mark.parametrize("second", ["approve", "deny", "wrong number"])
def test_a_challenge_is_decided_once(ctx, device, push, second):
    assert device.approve(push.ticket.id, push.ticket.match_number).status_code == 200
    if second == "approve":
        response = device.approve(push.ticket.id, push.ticket.match_number)
    elif second == "deny":
        response = device.deny(push.ticket.id)
    else:
        response = device.approve(push.ticket.id, (push.ticket.match_number + 1) % 100)
    refused(response, 409, "ticket_used")
    row = fresh(push.ticket)
    assert (row.state, row.deny_reason) == ("approved", "")


def test_a_consumed_challenge_cannot_be_decided(ctx, device, push):
    assert device.approve(push.ticket.id, push.ticket.match_number).status_code == 200
    Ticket.update(state="consumed").where(Ticket.id == push.ticket.id).execute()
    refused(device.approve(push.ticket.id, push.ticket.match_number), 409, "ticket_used")


def test_eight_parallel_approvals_succeed_once(ctx, app, device, push):
    number = push.ticket.match_number

    results = run_threads(app, 8, lambda i: device.on(app.test_client()).approve(push.ticket.id, number))

    statuses = sorted(r.status_code for kind, r in results if kind == "ok")
    assert len(statuses) == 8, results
    assert statuses == [200] + [409] * 7
    assert {error_code(r) for _, r in results if r.status_code == 409} == {"ticket_used"}
    assert fresh(push.ticket).state == "approved"
    assert AuditEvent.select().where(AuditEvent.event == "app_login_approved").count() == 1


def test_parallel_approve_and_deny_decide_once(ctx, app, device, push):
    number = push.ticket.match_number

    def work(i):
        phone = device.on(app.test_client())
        return phone.approve(push.ticket.id, number) if i % 2 else phone.deny(push.ticket.id)

    results = run_threads(app, 8, work)
    statuses = [r.status_code for _, r in results]
    assert statuses.count(200) == 1 and statuses.count(409) == 7, statuses
    winner = fresh(push.ticket).state
    events = AuditEvent.select().where(AuditEvent.event.in_(["app_login_approved", "app_login_denied"])).count()
    assert winner in ("approved", "denied") and events == 1


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_another_accounts_device_cannot_see_or_decide(ctx, device, bobs_device, push, action):
    assert bobs_device.pending() == []
    if action == "approve":
        response = bobs_device.approve(push.ticket.id, push.ticket.match_number)
    else:
        response = bobs_device.deny(push.ticket.id)
    refused(response, 404, "challenge_not_found")
    assert undecided(push.ticket)


@pytest.mark.parametrize("challenge_id", [0, 999999, 2147483647])
def test_an_unknown_challenge_is_404(ctx, device, challenge_id):
    refused(device.approve(challenge_id, 42), 404, "challenge_not_found")


def test_a_challenge_id_beyond_32_bits_is_404(ctx, device):
    refused(device.call("POST", "/challenges/2147483648/approve", {"number": 42}), 404, "not_found")


def test_a_qr_ticket_is_not_a_challenge(ctx, user, device):
    qr = app_ticket(second_step_session(user), "login")
    refused(device.approve(qr.ticket.id, 42), 404, "challenge_not_found")
    assert undecided(qr.ticket)


def test_a_removed_device_cannot_approve(ctx, user, device, push):
    Factor.delete().where(Factor.user == user).execute()
    refused(device.approve(push.ticket.id, push.ticket.match_number), 401, "device_unknown")
    assert undecided(push.ticket)


# --- push caps ----------------------------------------------------------------------------------


def test_at_most_three_open_pushes_per_account(ctx, user, device):
    for _ in range(approvals.PUSH_OPEN_LIMIT):
        approvals.start_login(second_step_session(user), "app", BROWSER, "push")

    with pytest.raises(Throttled) as caught:
        approvals.start_login(second_step_session(user), "app", BROWSER, "push")
    assert "待处理的授权请求过多" in caught.value.message
    assert caught.value.status == 429

    # The QR still works; and once one push is decided, a new one may be sent.
    assert approvals.start_login(second_step_session(user), "app", BROWSER, "qr").ticket.channel == "qr"
    oldest = device.pending()[-1]
    assert device.deny(oldest["id"], "declined").status_code == 200
    assert approvals.start_login(second_step_session(user), "app", BROWSER, "push").ticket.channel == "push"


def test_pushes_of_logged_out_browsers_do_not_count(ctx, user, device):
    """Three times 返回登录 (logout) and a fresh login: the new push still goes out."""
    for _ in range(approvals.PUSH_OPEN_LIMIT):
        session = second_step_session(user)
        approvals.start_login(session, "app", BROWSER, "push")
        sessions.end(session, "logout")

    new = approvals.start_login(second_step_session(user), "app", BROWSER, "push")

    assert tickets.open_pushes(user).count() == 1
    assert [c["id"] for c in device.pending()] == [new.ticket.id]


def test_a_page_visit_reuses_the_open_push_and_a_click_replaces_it(ctx, user, device, monkeypatch):
    session = second_step_session(user)
    first = approvals.start_login(session, "app", BROWSER, "push")
    assert approvals.start_login(session, "app", BROWSER, "push").ticket.id == first.ticket.id  # a reload
    # A click within the pause shows the open push again; after an ended one it asks to wait.
    assert approvals.start_login(session, "app", BROWSER, "push", resend=True).ticket.id == first.ticket.id
    expire(first.ticket)
    Ticket.update(created_at=utcnow()).where(Ticket.id == first.ticket.id).execute()
    with pytest.raises(Throttled) as caught:
        approvals.start_login(session, "app", BROWSER, "push", resend=True)
    assert "秒后再重新发送" in caught.value.message and caught.value.code == "rate_limited"

    monkeypatch.setattr(approvals, "PUSH_INTERVAL", timedelta(0))
    second = approvals.start_login(session, "app", BROWSER, "push", resend=True)

    assert Ticket.get_or_none(Ticket.token_hash == first.ticket.token_hash) is None
    assert [c["id"] for c in device.pending()] == [second.ticket.id]
    assert tickets.open_pushes(user).count() == 1


def test_an_ended_push_is_not_sent_again_by_itself(ctx, user, device):
    session = second_step_session(user)
    first = approvals.start_login(session, "app", BROWSER, "push")
    expire(first.ticket)
    assert approvals.start_login(session, "app", BROWSER, "push") is None  # nothing new without a click
    assert device.pending() == []


def test_pushes_are_capped_per_window(ctx, app, user, device, monkeypatch):
    monkeypatch.setattr(approvals, "PUSH_INTERVAL", timedelta(0))
    monkeypatch.setattr(approvals, "PUSHES_PER_WINDOW", (3, 30))
    session = second_step_session(user)
    for _ in range(3):
        approvals.start_login(session, "app", BROWSER, "push", resend=True)  # each replaces the last

    with pytest.raises(Throttled) as caught:
        approvals.start_login(session, "app", BROWSER, "push", resend=True)
    assert "发送授权请求过于频繁" in caught.value.message and "尝试次数过多" not in caught.value.message
    assert throttle.locked_until("otp", user.account, BROWSER.ip) is None  # a cap, not a lockout
    # Pushes spent their own budget, not the code's: the QR and the code still work.
    assert approvals.start_login(session, "app", BROWSER, "qr").ticket.channel == "qr"
    assert factors.verify(user, "app", device.code(), BROWSER, "login") == "app"


# --- QR approval (扫二维码) -----------------------------------------------------------------------


@pytest.mark.parametrize("trust_device", [False, True])
def test_scan_approves_a_login_qr(ctx, user, device, trust_device):
    qr = app_ticket(second_step_session(user), "login")

    response = device.scan(qr.token, trust_device)

    assert response.status_code == 200
    assert response.get_json() == {"state": "approved", "purpose": "login"}
    row = fresh(qr.ticket)
    assert (row.state, row.approver, row.trust_device) == ("approved", device.device_id, trust_device)
    assert AuditEvent.get(AuditEvent.event == "app_login_approved").detail == "qr"


@pytest.mark.parametrize("purpose", ["unbind", "rebind"])
def test_scan_approves_unbind_and_rebind_qrs_without_trust(ctx, user, device, purpose):
    qr = app_ticket(browser_session(user), purpose, target="app")
    assert device.scan(qr.token, True).status_code == 200
    row = fresh(qr.ticket)
    assert (row.state, row.purpose, row.trust_device) == ("approved", purpose, False)


def test_scan_by_another_accounts_device_is_403(ctx, user, device, bobs_device):
    qr = app_ticket(second_step_session(user), "login")
    refused(bobs_device.scan(qr.token), 403, "not_bound_to_you")
    assert undecided(qr.ticket)


def test_scan_of_a_bind_qr_is_the_wrong_purpose(ctx, user, bob, device):
    qr = app_ticket(browser_session(bob), "bind")
    refused(device.scan(qr.token), 400, "wrong_purpose")
    assert undecided(qr.ticket)
    assert app_factor(bob) is None


def test_scan_of_a_push_ticket_is_the_wrong_purpose(ctx, user, device, push):
    refused(device.scan(push.token), 400, "wrong_purpose")
    assert undecided(push.ticket)


def test_scan_of_an_expired_qr_is_410(ctx, user, device):
    qr = app_ticket(second_step_session(user), "login")
    expire(qr.ticket)
    refused(device.scan(qr.token), 410, "ticket_expired")
    assert undecided(qr.ticket)


def test_scan_twice_is_409(ctx, user, device):
    qr = app_ticket(second_step_session(user), "login")
    assert device.scan(qr.token).status_code == 200
    refused(device.scan(qr.token), 409, "ticket_used")


@pytest.mark.parametrize("token", ["no-such-ticket", "x" * 200])
def test_scan_of_an_unknown_qr_is_404(ctx, device, token):
    refused(device.scan(token), 404, "ticket_not_found")


def test_scan_of_a_wechat_qr_is_404(ctx, user, device):
    qr = new_ticket(second_step_session(user), "login")
    refused(device.scan(qr.token), 404, "ticket_not_found")
    assert undecided(qr.ticket)


def test_scan_of_a_logged_out_browsers_qr_is_409(ctx, user, device):
    session = second_step_session(user)
    qr = app_ticket(session, "login")
    sessions.end(session, "logout")
    refused(device.scan(qr.token), 409, "session_ended")
    assert undecided(qr.ticket)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_scan_trust_device_must_be_a_boolean(ctx, user, device, value):
    qr = app_ticket(second_step_session(user), "login")
    refused(device.call("POST", f"/tickets/{qr.token}/approve", {"trust_device": value}), 400, "invalid_input")
    assert undecided(qr.ticket)


def test_eight_parallel_scans_approve_once(ctx, app, user, device):
    qr = app_ticket(second_step_session(user), "login")
    results = run_threads(app, 8, lambda i: device.on(app.test_client()).scan(qr.token).status_code)
    assert sorted(r for _, r in results) == [200] + [409] * 7, results
    assert fresh(qr.ticket).state == "approved"


# --- removing the device (App: 解绑) ------------------------------------------------------------


def test_remove_unbinds_the_app(ctx, user, device):
    trusted = trust.issue(user, BROWSER, "app")

    response = device.remove()

    assert response.status_code == 200
    assert response.get_json() == {"removed": True}
    assert app_factor(user) is None
    assert devices_of(user) == []
    assert not trust.is_trusted(trusted, user)
    event = AuditEvent.get(AuditEvent.event == "factor_unbound")
    assert (event.method, event.detail) == ("app", "verified by app")
    refused(device.call("GET", "/challenges"), 401, "device_unknown")


def test_remove_keeps_other_factors(ctx, user, device, totp_secret):
    assert device.remove().status_code == 200
    assert factors.bound_methods(user) == ["totp"]


def test_a_forced_users_only_factor_cannot_be_removed(ctx, user, device):
    policy.set_value("force_2fa", "all")
    refused(device.remove(), 403, "not_allowed")
    assert app_factor(user).external_id == device.device_id
    assert device.call("GET", "/challenges").status_code == 200


def test_a_forced_user_with_another_factor_may_remove(ctx, user, device, totp_secret):
    policy.set_value("force_2fa", "all")
    assert device.remove().status_code == 200
    assert factors.bound_methods(user) == ["totp"]


def test_the_app_code_is_a_second_factor(ctx, user, device):
    """The seed returned at enrollment gives the 6-digit code verified at /login/verify."""
    assert factors.verify(user, "app", device.code(), BROWSER, "login") == "app"
    assert Factor.get(Factor.user == user).external_id == device.device_id
    with pytest.raises(Exception) as caught:  # the same code twice: refused (invariant 3)
        factors.verify(user, "app", device.code(), BROWSER, "login")
    assert caught.value.code == "code_reused"


def test_accounts_service_reset_removes_the_app(ctx, user, device):
    accounts.reset_2fa(user.account, reason="lost phone")
    refused(device.call("GET", "/challenges"), 401, "device_unknown")


def test_password_is_not_a_device_credential(ctx, app, user, device):
    """The App API takes no cookies or passwords: only a device signature."""
    response = app.test_client().get(
        CHALLENGES, headers={"Authorization": f"Basic {b64(f'{user.account}:{PASSWORD}'.encode())}"}
    )
    refused(response, 401, "device_unknown")


def test_old_signatures_are_pruned_and_recent_ones_kept(ctx):
    DeviceSignature.create(signature_hash="old" * 10, created_at=utcnow() - timedelta(minutes=10))
    DeviceSignature.create(signature_hash="new" * 10)
    assert app_devices.prune_signatures() == 1
    assert [row.signature_hash for row in DeviceSignature.select()] == ["new" * 10]
