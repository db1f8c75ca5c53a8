"""A loopback Web Push service (RFC 8030) that also plays the browser's part, for the tests.

For each fake subscription it makes what a browser makes (a P-256 key pair and a 16-byte auth
secret) and hands out ``PushSubscription.toJSON()``: ``{endpoint, expirationTime, keys: {p256dh, auth}}``
with the endpoint on this stub. A POST to an endpoint is checked as a push service and a browser
would, independently of ``portal.services.web_push``: the VAPID ``Authorization: vapid t=<JWT>, k=<key>``
(RFC 8292: an ES256 signature valid for ``k``, ``aud`` the stub's origin, ``exp`` in the future and at
most 24 h ahead, a ``sub``), then the body is decrypted with ``http_ece`` (aes128gcm, RFC 8291). Good
pushes are kept in ``received`` (payload, TTL, Urgency) and answered 201; refused ones land in
``rejected`` with the reason, answered 401/400.

    stub = PushStub().start()                 # or the ``push_stub`` fixture
    sub = stub.subscribe()                    # sub.json: what the App PUTs to /push-subscription
    stub.subscribe(status=410)                # that endpoint answers 410 Gone (404, 500, … alike)
    stub.subscribe(hold=True)                 # holds each push until stub.release() (or 10 s): ``arrived``
    stub.received, stub.rejected, stub.reset(), stub.stop()
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.helpers import LOOPBACK

MAX_EXP = 24 * 3600  # RFC 8292 §2: a push service may refuse an exp more than 24 h ahead
HOLD_LIMIT = 10.0  # seconds a held push waits for release() at most


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeSubscription:
    """One browser's push subscription: its keys stay here, its JSON goes to the portal."""

    id: str
    endpoint: str
    status: int = 201
    hold: bool = False
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    @property
    def json(self) -> dict:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


@dataclass(frozen=True)
class Received:
    """A push the stub accepted (VAPID valid, body decrypted)."""

    subscription: str
    payload: bytes
    ttl: str | None
    urgency: str | None
    content_encoding: str | None
    claims: dict
    vapid_key: str  # the k= of the Authorization header

    @property
    def json(self) -> object:
        return json.loads(self.payload)


class _Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class PushStub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._subscriptions: dict[str, FakeSubscription] = {}
        self.received: list[Received] = []
        self.rejected: list[tuple[str, str]] = []  # (subscription id, why)
        self.answered: list[tuple[str, int]] = []  # (subscription id, status) of every push answered
        self.arrived = threading.Event()  # a held push has reached the stub
        self._release = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> PushStub:
        handler = type("Handler", (_Handler,), {"stub": self})
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def origin(self) -> str:
        assert self._server is not None, "start() the stub first"
        return f"http://{LOOPBACK}:{self._server.server_port}"

    def subscribe(self, status: int = 201, hold: bool = False) -> FakeSubscription:
        sub_id = secrets.token_urlsafe(12)
        sub = FakeSubscription(sub_id, f"{self.origin}/push/{sub_id}", status, hold)
        with self._lock:
            self._subscriptions[sub_id] = sub
        return sub

    def release(self) -> None:
        self._release.set()

    def reset(self) -> None:
        self._release.set()
        with self._lock:
            self._subscriptions.clear()
            self.received.clear()
            self.rejected.clear()
            self.answered.clear()
        self.arrived.clear()
        self._release = threading.Event()

    # -- a push arrives -------------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        sub_id = path.rsplit("/", 1)[-1]
        with self._lock:
            sub = self._subscriptions.get(sub_id) if path.startswith("/push/") else None
        if sub is None:
            return 404
        if sub.hold:
            self.arrived.set()
            self._release.wait(HOLD_LIMIT)
        try:
            claims, key = self._check_vapid(headers.get("authorization", ""))
            if headers.get("content-encoding") != "aes128gcm":
                raise _Refused(400, f"content-encoding {headers.get('content-encoding')!r}")
            try:
                payload = http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm")
            except Exception as exc:
                raise _Refused(400, f"cannot decrypt: {exc!r}") from exc
        except _Refused as refused:
            with self._lock:
                self.rejected.append((sub_id, refused.reason))
            return refused.status
        received = Received(sub_id, payload, headers.get("ttl"), headers.get("urgency"), "aes128gcm", claims, key)
        with self._lock:
            if sub.status < 300:
                self.received.append(received)
        return sub.status

    def _check_vapid(self, authorization: str) -> tuple[dict, str]:
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise _Refused(401, f"not a vapid Authorization: {authorization[:20]!r}")
        params = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        token, key = params.get("t", ""), params.get("k", "")
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(unb64url(header_b64))
            claims = json.loads(unb64url(claims_b64))
            signature = unb64url(signature_b64)
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        except ValueError as exc:
            raise _Refused(401, f"malformed VAPID token or key: {exc}") from exc
        if header.get("alg") != "ES256" or len(signature) != 64:
            raise _Refused(401, f"not an ES256 JWT: {header}")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise _Refused(401, "VAPID signature invalid for k") from exc
        now = time.time()
        if claims.get("aud") != self.origin:
            raise _Refused(401, f"aud {claims.get('aud')!r} is not {self.origin}")
        if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + MAX_EXP:
            raise _Refused(401, f"exp {claims.get('exp')!r} not within 24 h")
        if not claims.get("sub"):
            raise _Refused(401, "no sub")
        return claims, key


class _Handler(BaseHTTPRequestHandler):
    stub: PushStub
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status = self.stub.handle(self.path, headers, body)
        with self.stub._lock:
            self.stub.answered.append((self.path.rsplit("/", 1)[-1], status))
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            if status == 201:
                self.send_header("Location", f"{self.stub.origin}/message/{secrets.token_urlsafe(8)}")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError):  # the sender gave up (its timeout)
            pass


@pytest.fixture(scope="session")
def push_stub_server():
    stub = PushStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def push_stub(push_stub_server) -> PushStub:
    """The push stub, reset before and after each test; pushes still queued are awaited first."""
    from portal.services import web_push

    push_stub_server.reset()
    yield push_stub_server
    push_stub_server.release()
    web_push.wait(15)
    push_stub_server.reset()
