"""A software WebAuthn authenticator (ES256, "none" attestation) that answers like a browser would.

It takes the options JSON the portal hands to ``navigator.credentials.create/get`` and an origin,
and returns the credential JSON that static/js/security-key.js posts (base64url everywhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40
ES256 = -7


def b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RefusedByAuthenticator(Exception):
    """What the browser reports as InvalidStateError / NotAllowedError."""


class SoftAuthenticator:
    """One credential on one authenticator; ``sign_count`` goes up by one per assertion."""

    def __init__(self, sign_count: int = 0, transports: tuple[str, ...] = ("usb", "nfc")):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.aaguid = bytes(16)  # attestation none: the all-zero AAGUID
        self.sign_count = sign_count
        self.transports = list(transports)
        self.user_handle = b""

    def create(self, options_json: str, origin: str, rp_id: str | None = None) -> str:
        """The credential JSON for navigator.credentials.create(options)."""
        options = json.loads(options_json)
        excluded = {item["id"] for item in options.get("excludeCredentials", [])}
        if b64url(self.credential_id) in excluded:
            raise RefusedByAuthenticator("InvalidStateError: this credential is registered already")
        assert any(p["alg"] == ES256 for p in options["pubKeyCredParams"])
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attested = self.aaguid + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose_key()
        auth_data = self._auth_data(rp_id or options["rp"]["id"], FLAG_UP | FLAG_UV | FLAG_AT) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        response = {
            "clientDataJSON": b64url(client_data),
            "attestationObject": b64url(attestation),
            "transports": self.transports,
        }
        return self._credential(response)

    def get(self, options_json: str, origin: str, rp_id: str | None = None, sign_count: int | None = None) -> str:
        """The credential JSON for navigator.credentials.get(options); ``sign_count`` forces the counter."""
        options = json.loads(options_json)
        allowed = {item["id"] for item in options.get("allowCredentials", [])}
        if allowed and b64url(self.credential_id) not in allowed:
            raise RefusedByAuthenticator("NotAllowedError: no matching credential")
        self.sign_count = self.sign_count + 1 if sign_count is None else sign_count
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = self._auth_data(rp_id or options["rpId"], FLAG_UP | FLAG_UV)
        signature = self.private_key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
            "userHandle": b64url(self.user_handle),
        }
        return self._credential(response)

    def _credential(self, response: dict) -> str:
        credential_id = b64url(self.credential_id)
        return json.dumps(
            {
                "id": credential_id,
                "rawId": credential_id,
                "type": "public-key",
                "response": response,
                "clientExtensionResults": {},
                "authenticatorAttachment": "cross-platform",
            }
        )

    def _auth_data(self, rp_id: str, flags: int) -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", self.sign_count)

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def _cose_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )
