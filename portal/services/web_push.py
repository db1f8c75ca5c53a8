"""Web Push to the 邮箱安全 App (RFC 8030; payload encrypted aes128gcm, RFC 8291; VAPID, RFC 8292).

A push only says that a challenge waits, ``{"challenge": <ticket id>}``: the App fetches the rest
over its signed API, so nothing about the login passes through the browser vendor's push service.
Sending never happens in the request that made the challenge (invariant 16): the request reads the
subscriptions (one query) and hands plain values to a small per-process thread pool; each send is
bounded by ``TIMEOUT`` and never raises. A push service answering 404 or 410 has dropped the
subscription, so it is deleted here too; other failures are logged and dropped (the App also polls).
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import logging
import os
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, current_app
from flask_babel import gettext as _
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

from portal import vapid
from portal.db import db
from portal.models import Device, Factor, PushSubscription, Ticket, utcnow
from portal.services import tickets
from portal.services.errors import InvalidInput

log = logging.getLogger(__name__)
TIMEOUT = 5.0  # seconds to connect, and again for the answer (requests' timeout); push services answer at once
WORKERS = 4  # sends in flight per process
ENDPOINT_LIMIT = 1000
GONE = (404, 410)  # RFC 8030 §7.3: the subscription expired or was removed

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_pid = 0
_futures: set[concurrent.futures.Future] = set()


@dataclass(frozen=True)
class Delivery:
    """One push to send: plain values only (no model, no connection) cross into the worker thread."""

    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    payload: str
    ttl: int
    private_key: str
    subject: str
    public_only: bool  # production: only to push services on the internet (the endpoint comes from a device)


def enabled() -> bool:
    """Whether pushes are sent: a VAPID key is configured."""
    return bool(current_app.config.get("VAPID_PRIVATE_KEY"))


def public_key() -> str | None:
    """The applicationServerKey the App subscribes with (None: no pushes, the App polls)."""
    return vapid.public_key(str(current_app.config["VAPID_PRIVATE_KEY"])) if enabled() else None


def subscribe(device: Device, body: dict) -> None:
    """Keep the browser's ``PushSubscription.toJSON()`` for this device, replacing any earlier one."""
    endpoint, keys = body.get("endpoint"), body.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, dict):
        raise InvalidInput(_("需要 endpoint 和 keys"), code="invalid_input")
    _check_endpoint(endpoint)
    p256dh, auth = _key(keys.get("p256dh"), 65, "p256dh"), _key(keys.get("auth"), 16, "auth")
    now = utcnow()
    values = {"endpoint": endpoint, "p256dh": p256dh, "auth": auth, "created_at": now, "updated_at": now}
    # One statement either way: two racing PUTs of one device cannot both insert.
    PushSubscription.insert(device=device.id, **values).on_conflict(
        conflict_target=[PushSubscription.device], update=values
    ).execute()


def unsubscribe(device: Device) -> None:
    PushSubscription.delete().where(PushSubscription.device == device.id).execute()


def notify(ticket: Ticket) -> int:
    """Queue a push of this App challenge to the user's bound devices; how many were queued."""
    if not enabled():
        return 0
    try:
        rows = list(
            PushSubscription.select(
                PushSubscription.id, PushSubscription.endpoint, PushSubscription.p256dh, PushSubscription.auth
            )
            .join(Device)
            .join(Factor, on=(Factor.external_id == Device.device_id) & (Factor.user == Device.user))
            .where((Device.user == ticket.user_id) & (Factor.method == "app"))
            .tuples()
        )
        ttl = tickets.expires_in(ticket)
        if ttl <= 0:
            return 0
        config, app = current_app.config, current_app._get_current_object()
        payload = json.dumps({"challenge": ticket.id})
        for row in rows:
            keys = str(config["VAPID_PRIVATE_KEY"]), str(config["VAPID_SUBJECT"])
            delivery = Delivery(*row, payload, ttl, *keys, public_only=config["ENV"] == "production")
            _submit(app, delivery)
        return len(rows)
    except Exception:  # a push is a courtesy: the challenge stands and the App polls
        log.warning("web push for challenge %s not queued", ticket.id, exc_info=True)
        return 0


def wait(timeout: float = 10.0) -> bool:
    """Wait for the pushes queued so far (tests); False if some are still running after ``timeout``."""
    with _lock:
        pending = list(_futures)
    _done, not_done = concurrent.futures.wait(pending, timeout)
    return not not_done


def _submit(app: Flask, delivery: Delivery) -> None:
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():  # first use, or a forked worker: the threads stayed behind
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="web-push")
            _pool_pid = os.getpid()
            _futures.clear()
        future = _pool.submit(_send, app, delivery)
        _futures.add(future)
    future.add_done_callback(_finished)


def _finished(future: concurrent.futures.Future) -> None:
    with _lock:
        _futures.discard(future)


def _send(app: Flask, delivery: Delivery) -> None:
    """In a worker thread: send one push; forget a subscription its push service no longer knows."""
    host = urlsplit(delivery.endpoint).hostname or ""
    if delivery.public_only and not _on_the_internet(host):
        log.warning("web push to %s refused: not a public address", host)
        return
    try:
        webpush(
            subscription_info={
                "endpoint": delivery.endpoint,
                "keys": {"p256dh": delivery.p256dh, "auth": delivery.auth},
            },
            data=delivery.payload,
            vapid_private_key=Vapid02(vapid.load(delivery.private_key)),
            vapid_claims={"sub": delivery.subject},
            timeout=TIMEOUT,
            ttl=delivery.ttl,
            headers={"Urgency": "high"},
        )
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in GONE:
            log.info("push subscription %s gone at %s (%s): deleted", delivery.subscription_id, host, status)
            _forget(app, delivery)
        else:
            log.warning("web push to %s failed: %s", host, status or exc)
    except Exception as exc:  # timeouts, refused connections, anything: never out of the worker
        log.warning("web push to %s failed: %r", host, exc)


def _forget(app: Flask, delivery: Delivery) -> None:
    """Delete the subscription unless the App has replaced it since (a new endpoint is kept)."""
    try:
        with app.app_context():
            try:
                PushSubscription.delete().where(
                    (PushSubscription.id == delivery.subscription_id) & (PushSubscription.endpoint == delivery.endpoint)
                ).execute()
            finally:
                if not db.is_closed():
                    db.close()
    except Exception:
        log.warning("push subscription %s not deleted", delivery.subscription_id, exc_info=True)


def _on_the_internet(host: str) -> bool:
    """Every address of ``host`` is a global one: a device cannot aim the portal's POSTs at the
    campus network or the portal's own host (push services are public: FCM, Apple, Mozilla, Microsoft)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)}
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_global for a in addresses)
    except (OSError, ValueError, UnicodeError):
        return False


def _check_endpoint(endpoint: str) -> None:
    """An absolute https URL (development and tests: http too, for a loopback stub), at most 1000 characters."""
    schemes = ("https",) if current_app.config["ENV"] == "production" else ("https", "http")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    clean = endpoint.isascii() and endpoint.isprintable() and " " not in endpoint
    if (
        not clean
        or len(endpoint) > ENDPOINT_LIMIT
        or parts is None
        or parts.scheme not in schemes
        or not host
        or parts.username is not None
    ):
        raise InvalidInput(_("endpoint 必须是 https:// 地址(至多 1000 个字符)"), code="invalid_input")


def _key(value: object, length: int, name: str) -> str:
    """A base64url subscription key of ``length`` bytes, kept unpadded."""
    try:
        raw = vapid.b64url_decode(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    try:
        if len(raw) != length:
            raise ValueError(f"{len(raw)} bytes")
        if length == 65:  # the browser's P-256 point, uncompressed: it must be on the curve
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise InvalidInput(_("keys.%(name)s 无效", name=name), code="invalid_input") from exc
    return vapid.b64url(raw)
