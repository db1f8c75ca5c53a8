"""Reference 邮箱安全 App: a command-line client of the device API.

Tests use it against a live server; operators use it to check a deployment:

    python -m portal.app_client --state app.json enroll URI       # URI: the bind QR's data-qr-url
    python -m portal.app_client --state app.json codes
    python -m portal.app_client --state app.json pending          # JSON lines
    python -m portal.app_client --state app.json approve ID --number N
    python -m portal.app_client --state app.json deny ID          # 不是本人操作
    python -m portal.app_client --state app.json scan URL         # a login QR's data-qr-url
    python -m portal.app_client --state app.json remove

The state file keeps the server URL, the device id, the Ed25519 private key and the TOTP seed.
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
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal.services.app_devices import signing_input

API = "/api/app/v1"
TIMEOUT = 10


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
    def enroll(self, uri: str, name: str = "Reference App", platform: str = "CLI") -> dict:
        server, _, ticket = uri.partition("/app/enroll/")
        if not ticket:
            raise ClientError("not a bind QR of the 邮箱安全 App (expected …/app/enroll/<ticket>)")
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        proof = base64.b64encode(key.sign(f"enroll\n{ticket}".encode())).decode()
        body = {
            "ticket": ticket,
            "public_key": base64.b64encode(public).decode(),
            "name": name,
            "platform": platform,
            "proof": proof,
        }
        result = self._send("POST", server, f"{API}/enroll", body, signed=False)
        private = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        self.state = {
            "server": server,
            "device_id": result["device_id"],
            "account": result["account"],
            "private_key": base64.b64encode(private).decode(),
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
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(self._need("private_key")))
            signature = key.sign(signing_input(method, path, timestamp, nonce, data))
            headers.update(
                {
                    "X-Device-Id": self._need("device_id"),
                    "X-Timestamp": timestamp,
                    "X-Nonce": nonce,
                    "X-Signature": base64.b64encode(signature).decode(),
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
            result = client.enroll(args.uri, args.name, args.platform)
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
