"""Helpers for the 邮箱安全 App tests: a signing device over the Flask test client, a live server.

``AppDevice`` is the App as the tests drive it in-process: an Ed25519 key, the device id and TOTP
seed from enrollment, and every request to /api/app/v1 signed like the reference client signs it
(``portal.app_client`` is tested separately against a live server). Its low-level ``signed`` /
``send`` let a test tamper with any part of a request.
"""

from __future__ import annotations

import base64
import json as jsonlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from portal import crypto
from portal.models import Device, Factor, LoginSession, Ticket, User
from portal.services import otp, sessions, tickets
from portal.services.app_devices import signing_input
from portal.services.client import Client
from portal.services.tickets import NewTicket
from tests.api.support import BROWSER, browser_session

API = "/api/app/v1"
ENROLL_MARK, SCAN_MARK = "/app/enroll/", "/app/t/"


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class P256Key:
    """An ECDSA P-256 device key as WebCrypto uses it: raw public point, raw r||s signatures (ES256)."""

    algorithm = "ES256"

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())

    def raw_public(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def malleated(signature: bytes) -> bytes:
    """The other valid ECDSA signature of the same message: (r, s) → (r, n − s)."""
    r, s = signature[:32], int.from_bytes(signature[32:], "big")
    return r + (P256_ORDER - s).to_bytes(32, "big")


def raw_public_key(key: Ed25519PrivateKey | P256Key) -> bytes:
    if isinstance(key, P256Key):
        return key.raw_public()
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def token_in(url: str) -> str:
    """The ticket a 邮箱安全 App QR names (<PUBLIC_URL>/app/enroll/<t> or /app/t/<t>), or ``url`` itself."""
    for mark in (ENROLL_MARK, SCAN_MARK):
        if mark in url:
            return url.split(mark, 1)[1]
    return url


def error_code(response) -> str:
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    return (body.get("error") or {}).get("code", "")


@dataclass
class AppDevice:
    """One phone with the 邮箱安全 App, talking to the portal through a Flask test client."""

    client: object
    key: Ed25519PrivateKey | P256Key = field(default_factory=Ed25519PrivateKey.generate)
    device_id: str = ""
    totp_secret: str = ""
    account: str = ""

    def on(self, client) -> AppDevice:
        """The same device (key, id, seed) over another test client, e.g. in another thread."""
        return AppDevice(client, self.key, self.device_id, self.totp_secret, self.account)

    @classmethod
    def es256(cls, client) -> AppDevice:
        """A phone whose App made an ECDSA P-256 key (WebCrypto without Ed25519)."""
        return cls(client, P256Key())

    # -- enrollment -------------------------------------------------------------------------
    def enroll_body(self, ticket: str, name: str = "EML-AL00", platform: str = "Android", **overrides) -> dict:
        body = {
            "ticket": ticket,
            "public_key": b64(raw_public_key(self.key)),
            "name": name,
            "platform": platform,
            "proof": b64(self.key.sign(f"enroll\n{ticket}".encode())),
        }
        if isinstance(self.key, P256Key):
            body["algorithm"] = "ES256"
        body.update(overrides)
        return body

    def enroll(self, qr: str, name: str = "EML-AL00", platform: str = "Android", **overrides):
        """Enroll from a bind QR (its URL or bare ticket); remembers the device id and seed on success."""
        response = self.client.post(f"{API}/enroll", json=self.enroll_body(token_in(qr), name, platform, **overrides))
        if response.status_code == 200:
            body = response.get_json()
            self.device_id, self.totp_secret, self.account = body["device_id"], body["totp_secret"], body["account"]
        return response

    # -- signed requests --------------------------------------------------------------------
    def signed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        timestamp: str | None = None,
        nonce: str | None = None,
        key: Ed25519PrivateKey | P256Key | None = None,
    ) -> dict[str, str]:
        """The four headers of a request signed by this device (or by ``key``)."""
        timestamp = str(int(time.time())) if timestamp is None else timestamp
        nonce = secrets.token_urlsafe(16) if nonce is None else nonce
        signature = (key or self.key).sign(signing_input(method, path, timestamp, nonce, body))
        return {
            "X-Device-Id": self.device_id,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": b64(signature),
        }

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]):
        """Send exactly these bytes and headers (for replays and tampering)."""
        if body:
            headers = {**headers, "Content-Type": "application/json"}
        return self.client.open(path, method=method, data=body, headers=headers)

    def call(self, method: str, path: str, json: object = None, **sign):
        """A correctly signed request; ``path`` is relative to /api/app/v1."""
        body = jsonlib.dumps(json).encode() if json is not None else b""
        full = API + path
        return self.send(method, full, body, self.signed(method, full, body, **sign))

    def pending(self) -> list[dict]:
        response = self.call("GET", "/challenges")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["challenges"]

    def approve(self, challenge_id: int, number: object):
        return self.call("POST", f"/challenges/{challenge_id}/approve", {"number": number})

    def deny(self, challenge_id: int, reason: str = "not_me"):
        return self.call("POST", f"/challenges/{challenge_id}/deny", {"reason": reason})

    def scan(self, qr: str, trust_device: bool = False):
        return self.call("POST", f"/tickets/{token_in(qr)}/approve", {"trust_device": trust_device})

    def preview(self, qr: str):
        return self.call("GET", f"/tickets/{token_in(qr)}")

    def subscribe(self, subscription: dict):
        return self.call("PUT", "/push-subscription", subscription)

    def remove(self):
        return self.call("DELETE", "/device")

    def code(self, step: int | None = None) -> str:
        """The 6-digit code the App shows (at a TOTP time step)."""
        return otp.code_at(self.totp_secret, otp.current_step() if step is None else step)


# --- tickets and rows as the web pages would make them ----------------------------------------


def app_ticket(
    session: LoginSession,
    purpose: str,
    channel: str = "qr",
    target: str = "",
    replaces: bool = False,
    client: Client = BROWSER,
) -> NewTicket:
    """A 邮箱安全 App ticket of this browser session (QR, or a push challenge)."""
    return tickets.create(
        session, session.user, "app", purpose, client, target=target, replaces=replaces, channel=channel
    )


def enrolled(
    client, user: User, name: str = "EML-AL00", platform: str = "Android", algorithm: str = "Ed25519"
) -> AppDevice:
    """A new App enrolled for ``user`` from a bind QR of a fresh full browser session."""
    device = AppDevice.es256(client) if algorithm == "ES256" else AppDevice(client)
    response = device.enroll(app_ticket(browser_session(user), "bind").token, name, platform)
    assert response.status_code == 200, response.get_data(as_text=True)
    return device


def second_step_session(user: User, client: Client = BROWSER) -> LoginSession:
    """A browser that passed the password and waits for the second step."""
    return browser_session(user, sessions.SECOND_FACTOR, client)


def app_factor(user: User) -> Factor | None:
    return Factor.get_or_none((Factor.user == user) & (Factor.method == "app"))


def devices_of(user: User) -> list[Device]:
    return list(Device.select().where(Device.user == user))


def ticket_by_token(token: str) -> Ticket:
    return Ticket.get(Ticket.token_hash == crypto.token_hash(token))


# --- a live server (real HTTP) whose PUBLIC_URL is its own address ----------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class LiveServer:
    """An HTTP server bound before the app exists, so the app can be built with PUBLIC_URL = ``url``."""

    def __init__(self):
        self._app: Flask | None = None
        self._server = make_server("127.0.0.1", 0, self._dispatch, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _dispatch(self, environ, start_response):
        if self._app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no app mounted"]
        return self._app(environ, start_response)

    def mount(self, app: Flask) -> str:
        assert app.config["PUBLIC_URL"] == self.url, "build the app with PUBLIC_URL = the server's URL"
        self._app = app
        return self.url

    @contextmanager
    def running(self) -> Iterator[LiveServer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
