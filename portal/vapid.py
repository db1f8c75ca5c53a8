"""VAPID keys (RFC 8292) for Web Push: read PORTAL_VAPID_PRIVATE_KEY, make new ones, name the public key."""

from __future__ import annotations

import base64
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

NOBODY = "mailto:postmaster@localhost"  # the subject when none is configured and PUBLIC_URL is not https
# Subjects py-vapid's strict check lets through (it refuses to sign others): a mail address, or an https origin.
SUBJECT = re.compile(r"^(mailto:[^@\s]+@(localhost|[\w-]+(\.[\w-]+)+)|https://(localhost|[\w-]+(\.[\w-]+)+))$")
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict base64url, padded or not (ValueError otherwise)."""
    if not BASE64URL.match(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def load(text: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key from its raw base64url form (32 bytes) or a PEM (ValueError if neither)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.replace("\\n", "\n").encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("not a readable unencrypted PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("the PEM key is not an ECDSA P-256 (prime256v1) key")
        return key
    try:
        raw = b64url_decode(text)
    except ValueError as exc:
        raise ValueError("expected the raw P-256 private key in base64url (43 characters) or a PEM") from exc
    value = int.from_bytes(raw, "big")
    if len(raw) != 32 or not 0 < value < P256_ORDER:
        raise ValueError("expected the raw P-256 private key in base64url (32 bytes, 43 characters) or a PEM")
    return ec.derive_private_key(value, ec.SECP256R1())


def new_private_key() -> str:
    """A fresh key in the form PORTAL_VAPID_PRIVATE_KEY takes (raw base64url, no padding)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def public_key(text: str) -> str:
    """The applicationServerKey the App subscribes with: the uncompressed point, base64url, no padding."""
    point = (
        load(text).public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return b64url(point)


def valid_subject(subject: str) -> bool:
    return bool(SUBJECT.match(subject))
