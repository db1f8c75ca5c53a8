"""Web Push to the 邮箱安全 App (RFC 8030/8291/8292): the VAPID key, push subscriptions, and the
push a new App challenge sends, checked and decrypted by a loopback push service (DESIGN §5
"邮箱安全 App as a web app"; invariants 11, 16)."""

from __future__ import annotations

import logging

import pytest

from portal import vapid
from portal.models import PushSubscription
from portal.services import accounts, approvals, factors, web_push
from portal.services.client import Client
from tests.api.app_support import API, AppDevice, app_ticket, enrolled, error_code, second_step_session
from tests.api.support import BROWSER, browser_session
from tests.conftest import PASSWORD
from tests.support.push_stub import push_stub, push_stub_server, unb64url  # noqa: F401 -- fixtures

KEY = vapid.new_private_key()


def refused(response, status: int, code: str) -> None:
    assert (response.status_code, error_code(response)) == (status, code), response.get_data(as_text=True)


@pytest.fixture
def app_config(app_config) -> dict:
    app_config["VAPID_PRIVATE_KEY"] = KEY
    app_config["VAPID_SUBJECT"] = "mailto:postmaster@mail.xamd.edu.cn"
    return app_config


@pytest.fixture
def device(ctx, app, user):
    return enrolled(app.test_client(), user)


def send_push(user, purpose: str = "login"):
    """What /login/verify (or a 安全验证 dialog) does for the App: a push challenge, and its Web Push."""
    return approvals.push(second_step_session(user), user, purpose, "app", BROWSER, resend=False)


def subscriptions() -> list[tuple[int, str]]:
    return [(row.device_id, row.endpoint) for row in PushSubscription.select().order_by(PushSubscription.id)]


# --- the VAPID public key ----------------------------------------------------------------------


def test_push_key_is_public_and_is_the_configured_keys(ctx, app):
    response = app.test_client().get(f"{API}/push-key")
    assert response.status_code == 200
    key = response.get_json()["vapid_public_key"]
    assert key == vapid.public_key(KEY) and "=" not in key
    assert len(unb64url(key)) == 65 and unb64url(key)[0] == 0x04


def test_enroll_returns_the_push_key(ctx, app, user):
    phone = AppDevice(app.test_client())
    body = phone.enroll(app_ticket(browser_session(user), "bind").token).get_json()
    assert body["vapid_public_key"] == vapid.public_key(KEY)


# --- subscriptions -----------------------------------------------------------------------------


def test_subscribe_replace_unsubscribe(ctx, device, push_stub):
    first, second = push_stub.subscribe(), push_stub.subscribe()
    row_id = device_row(device)

    assert device.subscribe(first.json).get_json() == {"subscribed": True}
    assert subscriptions() == [(row_id, first.endpoint)]
    assert device.subscribe(second.json).get_json() == {"subscribed": True}  # pushsubscriptionchange
    assert subscriptions() == [(row_id, second.endpoint)]
    row = PushSubscription.get()
    assert (row.p256dh, row.auth) == (second.json["keys"]["p256dh"], second.json["keys"]["auth"])

    assert device.call("DELETE", "/push-subscription").get_json() == {"subscribed": False}
    assert subscriptions() == []
    assert device.call("DELETE", "/push-subscription").get_json() == {"subscribed": False}


def device_row(device) -> int:
    from portal.models import Device

    return Device.get(Device.device_id == device.device_id).id


def test_each_device_has_its_own_subscription(ctx, app, device, bob, push_stub):
    bobs = enrolled(app.test_client(), bob)
    device.subscribe(push_stub.subscribe().json)
    bobs.subscribe(push_stub.subscribe().json)
    assert len(subscriptions()) == 2


def test_subscribing_needs_a_signature(ctx, app, device, push_stub):
    client = app.test_client()
    refused(client.put(f"{API}/push-subscription", json=push_stub.subscribe().json), 401, "device_unknown")
    refused(client.delete(f"{API}/push-subscription"), 401, "device_unknown")
    assert subscriptions() == []


def _with(keys: dict | None = None, **fields) -> dict:
    body = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": {"p256dh": GOOD_P256DH, "auth": GOOD_AUTH}}
    body["keys"].update(keys or {})
    body.update(fields)
    return body


GOOD_P256DH = vapid.public_key(vapid.new_private_key())
GOOD_AUTH = "q1dXpw3UpT5VOmu_cf_v6w"
BAD_SUBSCRIPTIONS = {
    "no endpoint": {"keys": {"p256dh": GOOD_P256DH, "auth": GOOD_AUTH}},
    "endpoint not a string": _with(endpoint=["https://x.example"]),
    "endpoint not http(s)": _with(endpoint="ftp://push.example.net/x"),
    "endpoint relative": _with(endpoint="/push/abc"),
    "endpoint without host": _with(endpoint="https:///abc"),
    "endpoint with credentials": _with(endpoint="https://user:pw@push.example.net/x"),
    "endpoint with a space": _with(endpoint="https://push.example.net/a b"),
    "endpoint not ASCII": _with(endpoint="https://推送.example.net/x"),
    "endpoint too long": _with(endpoint="https://push.example.net/" + "a" * 1000),
    "no keys": {"endpoint": "https://push.example.net/x"},
    "keys not an object": {"endpoint": "https://push.example.net/x", "keys": "p256dh"},
    "p256dh missing": {"endpoint": "https://push.example.net/x", "keys": {"auth": GOOD_AUTH}},
    "p256dh too short": _with({"p256dh": GOOD_P256DH[:-2]}),
    "p256dh compressed": _with({"p256dh": vapid.b64url(b"\x02" + bytes(32))}),
    "p256dh off the curve": _with({"p256dh": vapid.b64url(b"\x04" + bytes(64))}),
    "p256dh standard base64": _with({"p256dh": "+/" + GOOD_P256DH[2:]}),
    "auth 15 bytes": _with({"auth": vapid.b64url(bytes(15))}),
    "auth 17 bytes": _with({"auth": vapid.b64url(bytes(17))}),
    "auth not a string": _with({"auth": 16}),
}


@pytest.mark.parametrize("case", list(BAD_SUBSCRIPTIONS))
def test_a_bad_subscription_is_400_and_stores_nothing(ctx, device, case):
    refused(device.subscribe(BAD_SUBSCRIPTIONS[case]), 400, "invalid_input")
    assert subscriptions() == []


def test_a_body_that_is_not_an_object_is_400(ctx, device):
    path = f"{API}/push-subscription"
    refused(device.send("PUT", path, b"[1]", device.signed("PUT", path, b"[1]")), 400, "invalid_json")


def test_production_takes_only_https_endpoints(ctx, app, device, push_stub):
    app.config["ENV"] = "production"
    refused(device.subscribe(push_stub.subscribe().json), 400, "invalid_input")  # the stub is http://
    assert device.subscribe(_with()).status_code == 200


@pytest.mark.parametrize("remove", ["app", "web", "admin"])
def test_removing_the_device_removes_its_subscription(ctx, user, device, push_stub, remove):
    device.subscribe(push_stub.subscribe().json)
    if remove == "app":
        assert device.remove().status_code == 200
    elif remove == "web":  # 解绑 on 二次验证设置
        factors.remove(user, "app", Client(), via="app")
    else:
        accounts.reset_2fa(user.account, reason="lost phone")
    assert subscriptions() == []


# --- sending -----------------------------------------------------------------------------------


def test_a_login_push_is_sent_encrypted_with_only_the_challenge_id(ctx, user, device, push_stub):
    sub = push_stub.subscribe()
    device.subscribe(sub.json)

    new = send_push(user)

    assert web_push.wait(10)
    assert push_stub.rejected == []
    (received,) = push_stub.received
    assert received.subscription == sub.id
    assert received.payload == f'{{"challenge": {new.ticket.id}}}'.encode()
    assert received.json == {"challenge": new.ticket.id}
    assert 0 < int(received.ttl) <= 120  # the challenge's remaining seconds
    assert received.urgency == "high"
    assert received.vapid_key == vapid.public_key(KEY)
    assert received.claims["sub"] == "mailto:postmaster@mail.xamd.edu.cn"
    assert received.claims["aud"] == push_stub.origin
    assert subscriptions() != []


def test_every_kind_of_app_push_is_sent(ctx, user, device, push_stub):
    device.subscribe(push_stub.subscribe().json)
    ids = [send_push(user, purpose).ticket.id for purpose in ("login", "verify")]
    assert web_push.wait(10)
    assert sorted(r.json["challenge"] for r in push_stub.received) == sorted(ids)


def test_a_qr_ticket_sends_no_push(ctx, user, device, push_stub):
    device.subscribe(push_stub.subscribe().json)
    app_ticket(second_step_session(user), "login")
    assert web_push.wait(10)
    assert push_stub.answered == []


def test_only_the_users_own_devices_are_pushed(ctx, app, user, bob, device, push_stub):
    mine, theirs = push_stub.subscribe(), push_stub.subscribe()
    device.subscribe(mine.json)
    enrolled(app.test_client(), bob).subscribe(theirs.json)

    send_push(user)

    assert web_push.wait(10)
    assert [r.subscription for r in push_stub.received] == [mine.id]


def test_an_unbound_devices_subscription_is_not_pushed(ctx, user, device, push_stub):
    """The Device row alone is no App: only one its user's app factor names receives pushes."""
    from portal.models import Factor

    device.subscribe(push_stub.subscribe().json)
    Factor.update(external_id="dev_other").where(Factor.user == user).execute()
    send_push(user)
    assert web_push.wait(10)
    assert push_stub.answered == []


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_deleted(ctx, user, device, push_stub, status):
    device.subscribe(push_stub.subscribe(status=status).json)

    send_push(user)

    assert web_push.wait(10)
    assert [s for _, s in push_stub.answered] == [status]
    assert subscriptions() == []


def test_a_subscription_replaced_meanwhile_is_kept(ctx, user, device, push_stub):
    """A 410 for the old endpoint arrives after the App subscribed anew: the new one stays."""
    old = push_stub.subscribe(status=410, hold=True)
    device.subscribe(old.json)
    send_push(user)
    assert push_stub.arrived.wait(10)
    new = push_stub.subscribe()
    device.subscribe(new.json)
    push_stub.release()
    assert web_push.wait(10)
    assert [endpoint for _, endpoint in subscriptions()] == [new.endpoint]


def test_a_failing_push_service_is_logged_and_the_subscription_kept(ctx, user, device, push_stub, caplog):
    sub = push_stub.subscribe(status=500)
    device.subscribe(sub.json)
    with caplog.at_level(logging.WARNING, logger="portal.services.web_push"):
        new = send_push(user)
        assert web_push.wait(10)
    assert any("failed" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert [endpoint for _, endpoint in subscriptions()] == [sub.endpoint]
    assert device.pending()[0]["id"] == new.ticket.id  # the App still finds it by polling


def test_a_push_service_slower_than_the_timeout_is_given_up(ctx, user, device, push_stub, monkeypatch, caplog):
    monkeypatch.setattr(web_push, "TIMEOUT", 0.3)
    device.subscribe(push_stub.subscribe(hold=True).json)
    with caplog.at_level(logging.WARNING, logger="portal.services.web_push"):
        send_push(user)
        assert push_stub.arrived.wait(10)
        assert web_push.wait(10)  # the sender gave up while the stub still holds the push
    assert push_stub.answered == []
    assert any("failed" in r.getMessage() for r in caplog.records)
    assert len(subscriptions()) == 1


def test_an_unreachable_push_service_costs_the_request_nothing(ctx, user, device):
    from tests.api.app_support import closed_port_url

    device.subscribe(_with(endpoint=closed_port_url() + "/push/x"))
    new = send_push(user)  # returns; the failure is the worker's
    assert new.ticket.id
    assert web_push.wait(10)
    assert len(subscriptions()) == 1


def test_a_slow_push_service_does_not_delay_the_login_page(app, user, device, push_stub, browser, fresh_g):
    """The page that sends the push answers while the push service still holds the push."""
    device.subscribe(push_stub.subscribe(hold=True).json)
    assert browser.login(user.account, PASSWORD).headers["Location"].endswith("/login/verify")

    page = browser.get("/login/verify")

    assert page.status_code == 200 and "data-match-number" in page.get_data(as_text=True)
    assert push_stub.arrived.wait(10)  # the push reached the push service ...
    assert push_stub.answered == []  # ... which has not answered yet: the page did not wait for it
    push_stub.release()
    assert web_push.wait(10)
    (received,) = push_stub.received
    assert received.json == {"challenge": device.pending()[0]["id"]}


def test_without_a_vapid_key_nothing_is_sent(ctx, app, user, device, push_stub):
    device.subscribe(push_stub.subscribe().json)
    app.config["VAPID_PRIVATE_KEY"] = ""

    send_push(user)

    assert web_push.wait(10)
    assert push_stub.answered == []
    assert app.test_client().get(f"{API}/push-key").get_json() == {"vapid_public_key": None}


def test_production_pushes_only_to_push_services_on_the_internet(app, ctx, user, device, push_stub, caplog):
    """The endpoint comes from a device: in production the portal never POSTs to a loopback, campus or
    link-local address with it (the stub is on 127.0.0.1)."""
    device.subscribe(push_stub.subscribe().json)
    app.config["ENV"] = "production"
    with caplog.at_level(logging.WARNING, logger="portal.services.web_push"):
        send_push(user)
        assert web_push.wait(10)
    assert push_stub.received == []
    assert any("not a public address" in r.getMessage() for r in caplog.records)
    assert len(subscriptions()) == 1  # kept: the address may be public again later


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "no-such-host.invalid"])
def test_non_public_push_hosts_are_refused(host):
    assert web_push._on_the_internet(host) is False


def test_a_public_push_address_is_allowed():
    assert web_push._on_the_internet("8.8.8.8") is True  # an address literal: no DNS needed
