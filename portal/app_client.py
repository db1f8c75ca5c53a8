"""Reference 邮箱安全 App: a command-line client of the device API.

Tests use it against a live server; operators use it to check a deployment:

    python -m portal.app_client --state app.json enroll URI       # URI: the bind QR's data-qr-url
    python -m portal.app_client --state app.json enroll URI --algorithm es256   # a P-256 key, as WebCrypto
    python -m portal.app_client --state app.json codes
    python -m portal.app_client --state app.json pending          # JSON lines
    python -m portal.app_client --state app.json approve ID --number N
    python -m portal.app_client --state app.json deny ID          # 不是本人操作
    python -m portal.app_client --state app.json scan URL         # a login QR's data-qr-url
    python -m portal.app_client --state app.json remove

The state file keeps the server URL, the device id, the key's algorithm (Ed25519 or ES256; a file
without one is Ed25519), the private key (Ed25519: raw; ES256: PKCS#8 DER; base64) and the TOTP seed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
from pathlib import Path

import pyotp
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from portal.services.app_devices import signing_input

API = "/api/app/v1"
TIMEOUT = 10
ALGORITHMS = {"ed25519": "Ed25519", "es256": "ES256"}  # command-line spelling → the API's


class DeviceKey:
    """The device's signing key: Ed25519, or ECDSA P-256 signing raw r||s as WebCrypto does (ES256)."""

    def __init__(self, algorithm: str, key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        self.algorithm, self.key = algorithm, key

    @classmethod
    def generate(cls, algorithm: str) -> DeviceKey:
        if algorithm == "ES256":
            return cls(algorithm, ec.generate_private_key(ec.SECP256R1()))
        return cls("Ed25519", Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, algorithm: str, encoded: str) -> DeviceKey:
        raw = base64.b64decode(encoded)
        if algorithm == "ES256":
            key = serialization.load_der_private_key(raw, password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ClientError("the state file's ES256 key is not an EC key")
            return cls(algorithm, key)
        return cls("Ed25519", Ed25519PrivateKey.from_private_bytes(raw))

    def public(self) -> str:
        """base64 of the raw public key: 32 bytes, or the uncompressed P-256 point."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            raw = self.key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        else:
            raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def private(self) -> str:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            raw = self.key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        else:
            raw = self.key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        return base64.b64encode(raw).decode()

    def sign(self, message: bytes) -> str:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.key.sign(message, ec.ECDSA(hashes.SHA256())))
            return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
        return base64.b64encode(self.key.sign(message)).decode()


class ClientError(Exception):
    """A refused request or a local problem, printed as one line."""


class AppClient:
    def __init__(self, state_path: str | Path):
        self.path = Path(state_path)
        try:
            self.state = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read state file {self.path}: {exc}") from exc

    # -- enrollment -------------------------------------------------------------------------
    def enroll(self, uri: str, name: str = "Reference App", platform: str = "CLI", algorithm: str = "Ed25519") -> dict:
        server, _, ticket = uri.partition("/app/enroll/")
        if not ticket:
            raise ClientError("not a bind QR of the 邮箱安全 App (expected …/app/enroll/<ticket>)")
        key = DeviceKey.generate(algorithm)
        body = {
            "ticket": ticket,
            "algorithm": key.algorithm,
            "public_key": key.public(),
            "name": name,
            "platform": platform,
            "proof": key.sign(f"enroll\n{ticket}".encode()),
        }
        result = self._send("POST", server, f"{API}/enroll", body, signed=False)
        self.state = {
            "server": server,
            "device_id": result["device_id"],
            "account": result["account"],
            "algorithm": key.algorithm,
            "private_key": key.private(),
            "totp_secret": result["totp_secret"],
        }
        self._save()
        return result

    # -- what the App shows -----------------------------------------------------------------
    def code(self, now: float | None = None) -> tuple[str, int]:
        """The current 6-digit code and the seconds it stays valid."""
        now = time.time() if now is None else now
        totp = pyotp.TOTP(self._need("totp_secret"))
        return totp.at(now), 30 - int(now % 30)

    def pending(self) -> list[dict]:
        return self._call("GET", f"{API}/challenges")["challenges"]

    def approve(self, challenge_id: int, number: int | None) -> dict:
        if number is None:
            pending = {c["id"]: c for c in self.pending()}
            if challenge_id not in pending:
                raise ClientError(f"no pending challenge {challenge_id}")
            raise ClientError(
                f"pick the number shown in the browser: --number one of {pending[challenge_id]['choices']}"
            )
        return self._call("POST", f"{API}/challenges/{challenge_id}/approve", {"number": number})

    def deny(self, challenge_id: int, reason: str = "not_me") -> dict:
        return self._call("POST", f"{API}/challenges/{challenge_id}/deny", {"reason": reason})

    def scan(self, url: str, trust_device: bool = False) -> dict:
        _, _, ticket = url.partition("/app/t/")
        if not ticket:
            raise ClientError("not a login QR of the 邮箱安全 App (expected …/app/t/<ticket>)")
        return self._call("POST", f"{API}/tickets/{ticket}/approve", {"trust_device": trust_device})

    def remove(self) -> dict:
        result = self._call("DELETE", f"{API}/device")
        self.path.unlink(missing_ok=True)
        return result

    # -- transport --------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        return self._send(method, self._need("server"), path, body, signed=True)

    def _send(self, method: str, server: str, path: str, body: dict | None, signed: bool) -> dict:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if signed:
            timestamp, nonce = str(int(time.time())), secrets.token_urlsafe(16)
            key = DeviceKey.load(self.state.get("algorithm", "Ed25519"), self._need("private_key"))
            signature = key.sign(signing_input(method, path, timestamp, nonce, data))
            headers.update(
                {
                    "X-Device-Id": self._need("device_id"),
                    "X-Timestamp": timestamp,
                    "X-Nonce": nonce,
                    "X-Signature": signature,
                }
            )
        try:
            response = requests.request(method, server.rstrip("/") + path, data=data, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ClientError(f"server unreachable: {exc}") from exc
        try:
            payload = response.json()
        except ValueError as exc:
            raise ClientError(f"HTTP {response.status_code}: not a JSON reply") from exc
        if response.status_code >= 400:
            error = payload.get("error", {})
            raise ClientError(f"{error.get('code', response.status_code)}: {error.get('message', '')}")
        return payload

    def _need(self, key: str) -> str:
        if key not in self.state:
            raise ClientError(f"{self.path} has no {key}: enroll first")
        return self.state[key]

    def _save(self) -> None:
        # Created owner-only: the private key is never readable by others, not even briefly.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(self.state, indent=2))
        os.chmod(self.path, 0o600)  # a file that existed before keeps its mode on open


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.app_client", description="Reference 邮箱安全 App")
    parser.add_argument("--state", required=True, help="JSON file with this device's key and seed")
    commands = parser.add_subparsers(dest="command", required=True)
    enroll = commands.add_parser("enroll", help="bind: URI is the bind QR's data-qr-url")
    enroll.add_argument("uri")
    enroll.add_argument("--name", default="Reference App")
    enroll.add_argument("--platform", default="CLI")
    enroll.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="ed25519", help="the device key's kind")
    commands.add_parser("codes", help="print the current 6-digit code")
    commands.add_parser("pending", help="pending push challenges, one JSON object per line")
    approve = commands.add_parser("approve", help="approve a push challenge")
    approve.add_argument("id", type=int)
    approve.add_argument("--number", type=int, help="the number shown in the browser")
    deny = commands.add_parser("deny", help="deny a push challenge (不是本人操作)")
    deny.add_argument("id", type=int)
    scan = commands.add_parser("scan", help="approve a login QR: URL is its data-qr-url")
    scan.add_argument("url")
    scan.add_argument("--trust", action="store_true", help="确认授权并信任此设备")
    commands.add_parser("remove", help="remove this device (解绑)")
    args = parser.parse_args(argv)

    try:
        client = AppClient(args.state)
        if args.command == "enroll":
            result = client.enroll(args.uri, args.name, args.platform, ALGORITHMS[args.algorithm])
            print(f"enrolled {result['account']} as device {result['device_id']}")
        elif args.command == "codes":
            code, remaining = client.code()
            print(f"{client.state['account']}\t{code}\t{remaining}s")
        elif args.command == "pending":
            for challenge in client.pending():
                print(json.dumps(challenge, ensure_ascii=False))
        elif args.command == "approve":
            print(json.dumps(client.approve(args.id, args.number)))
        elif args.command == "deny":
            print(json.dumps(client.deny(args.id)))
        elif args.command == "scan":
            print(json.dumps(client.scan(args.url, args.trust)))
        elif args.command == "remove":
            print(json.dumps(client.remove()))
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
