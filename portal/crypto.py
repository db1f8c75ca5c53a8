"""Keys derived from the data key: HMAC for stored tokens, Fernet for secrets at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import lazy_gettext as _l

from portal.services.errors import SecretUnreadable


def _derive(purpose: bytes) -> bytes:
    key = str(current_app.config["DATA_KEY"]).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key)


def token_hash(token: str) -> str:
    """HMAC-SHA256 of a high-entropy token: what the database stores instead of the token."""
    return hmac.new(_derive(b"token-hmac"), token.encode(), hashlib.sha256).hexdigest()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


UNREADABLE = _l("系统无法读取该验证方式的密钥,请使用其他验证方式,或联系管理员")


def decrypt(ciphertext: str) -> str:
    """The plaintext; SecretUnreadable (503) if this key cannot decrypt it: fail closed, never a 500."""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except (InvalidToken, ValueError, TypeError) as exc:
        raise SecretUnreadable(UNREADABLE) from exc


def decrypts(ciphertext: str) -> bool:
    """Whether this key can decrypt a stored value (for `flask --app wsgi doctor`)."""
    try:
        decrypt(ciphertext)
    except SecretUnreadable:
        return False
    return True


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(b"field-encryption")))
