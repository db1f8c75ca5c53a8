"""The 邮箱安全 App's device keys: Ed25519, or ECDSA P-256 (ES256) as WebCrypto makes them.

Both travel in base64: an Ed25519 key as its raw 32 bytes, a P-256 key as the raw uncompressed
point (65 bytes from 0x04, WebCrypto ``exportKey("raw")``). An ES256 signature is the 64-byte
r||s of IEEE P1363 (what WebCrypto ``sign`` gives), not DER.
"""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from flask_babel import gettext as _

from portal.services.errors import InvalidCredentials, InvalidInput

ED25519, ES256 = "Ed25519", "ES256"
ALGORITHMS = (ED25519, ES256)
P256_POINT = 65  # bytes of an uncompressed point: 0x04, x, y
P256_SIGNATURE = 64  # r and s, 32 bytes each

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def algorithm(value: object) -> str:
    """The algorithm an enrollment names; absent or "" is Ed25519 (the App's first release)."""
    if value in (None, ""):
        return ED25519
    if value not in ALGORITHMS:
        raise InvalidInput(_("不支持的密钥算法(Ed25519 或 ES256)"), code="invalid_key")
    return str(value)


def public_key(algorithm: str, encoded: str) -> PublicKey:
    """The key from its base64 text; anything malformed (or not on the curve) is ``invalid_key``."""
    try:
        raw = base64.b64decode(encoded, validate=True)
        if algorithm == ES256:
            if len(raw) != P256_POINT or raw[0] != 0x04:
                raise ValueError("not an uncompressed P-256 point")
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(_("公钥无效"), code="invalid_key") from exc


def verify(key: PublicKey, signature: str, message: bytes) -> None:
    """Check a base64 signature over ``message``; any failure is ``bad_signature``."""
    try:
        raw = base64.b64decode(signature or "", validate=True)
        if isinstance(key, ec.EllipticCurvePublicKey):
            if len(raw) != P256_SIGNATURE:
                raise ValueError("an ES256 signature is 64 bytes r||s")
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(raw, message)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise InvalidCredentials(_("签名无效"), code="bad_signature") from exc
