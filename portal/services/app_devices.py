"""The 邮箱安全 App's side: enrollment, signed requests, push challenges, QR approval, removal.

Every request after enrollment is signed with the device's key (Ed25519, or ECDSA P-256 as
WebCrypto makes it: see ``device_keys``) over ``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256(body)``;
timestamps more than 60 s off are refused and a signed request is accepted once: the one-use row is
keyed by a hash of the device id and that signing input, never by the signature, whose bytes are
not unique (an ECDSA signature (r, s) has a twin (r, n−s); base64 has spare bits). The random nonce
keeps two identical requests in the same second apart.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import peewee
from flask_babel import gettext as _

from portal import crypto
from portal.db import db
from portal.models import Device, DeviceSignature, Factor, Ticket, User, utcnow
from portal.services import device_keys, factors, otp, tickets, web_push
from portal.services.client import Client
from portal.services.errors import Conflict, Expired, InvalidCredentials, InvalidInput, NotAllowed, NotFound

METHOD = "app"
CLOCK_SKEW = 60  # seconds a request's timestamp may be off


@dataclass(frozen=True)
class SignedRequest:
    device_id: str
    timestamp: str
    nonce: str
    signature: str
    method: str
    path: str
    body: bytes


def signing_input(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a device signs: the request line, its time, a random nonce and a hash of its body."""
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()


def enroll(
    ticket_token: str,
    public_key: str,
    name: str,
    platform: str,
    proof: str,
    client: Client | None = None,
    algorithm: object = None,
) -> dict:
    """Bind this App to the account of a bind ticket; ``proof`` signs the ticket with the new key."""
    algorithm = device_keys.algorithm(algorithm)
    key = device_keys.public_key(algorithm, public_key)
    device_keys.verify(key, proof, f"enroll\n{ticket_token}".encode())
    name, platform = _label(name, 60), _label(platform, 60)
    ticket = tickets.by_token(ticket_token, METHOD)
    if ticket.purpose != "bind":
        raise InvalidInput(_("这不是绑定二维码"), code="wrong_purpose")
    tickets.require_live_session(ticket)
    device_id = "dev_" + secrets.token_urlsafe(12)
    secret = otp.new_secret()
    label = f"{name} ({platform})" if platform else name
    with db.atomic():
        factors.commit_scanned_binding(
            ticket,
            device_id,
            client,
            detail=f"device {device_id} {label}",
            label=label,
            external_id=device_id,
            secret=crypto.encrypt(secret),
        )
        Device.create(
            device_id=device_id,
            user=ticket.user_id,
            public_key=public_key,
            algorithm=algorithm,
            name=name,
            platform=platform,
        )
    return {
        "device_id": device_id,
        "account": ticket.user.account,
        "name": ticket.user.name,
        "vapid_public_key": web_push.public_key(),
        "totp_secret": secret,
        "period": otp.PERIOD,
        "digits": otp.DIGITS,
    }


def authenticate(request: SignedRequest) -> Device:
    """The device that signed this request, refusing stale times, replays and removed devices."""
    device = Device.get_or_none(Device.device_id == (request.device_id or "")[:64])
    if device is None or not _is_bound(device):
        raise InvalidCredentials(_("设备未绑定或已解绑"), code="device_unknown")
    try:
        skew = abs(int(request.timestamp) - int(time.time()))
    except ValueError as exc:
        raise InvalidCredentials(_("时间戳无效"), code="bad_timestamp") from exc
    if skew > CLOCK_SKEW:
        raise InvalidCredentials(_("设备时间与服务器相差过大,请校准时间"), code="stale_request")
    if not 16 <= len(request.nonce) <= 64:
        raise InvalidCredentials(_("缺少随机数"), code="bad_nonce")
    message = signing_input(request.method, request.path, request.timestamp, request.nonce, request.body)
    device_keys.verify(device_keys.public_key(device.algorithm, device.public_key), request.signature, message)
    # What was signed, not the signature: its bytes and their spellings are not unique (module docstring).
    digest = hashlib.sha256(device.device_id.encode() + b"\n" + message).hexdigest()
    try:
        with db.atomic():
            DeviceSignature.create(signature_hash=digest)
    except peewee.IntegrityError as exc:
        raise InvalidCredentials(_("重复的请求"), code="replayed_request") from exc
    if secrets.randbelow(100) == 0:  # now and then, forget signatures too old to be accepted anyway
        prune_signatures()
    Device.update(last_seen_at=utcnow()).where(Device.id == device.id).execute()
    return device


def pending(device: Device) -> list[dict]:
    """Open push challenges for this device's account, newest first."""
    return [
        {
            "id": ticket.id,
            "purpose": ticket.purpose,
            "account": ticket.user.account,
            "name": ticket.user.name,
            "request": tickets.describe(ticket),
            "choices": [int(n) for n in ticket.choices.split(",") if n],
            "expires_in": tickets.expires_in(ticket),
        }
        for ticket in tickets.open_pushes(device.user_id).where(Ticket.method == METHOD)
    ]


def approve(device: Device, challenge_id: int, number: object, client: Client | None = None) -> dict:
    """确定授权: the number picked in the App must be the one the browser shows."""
    ticket = _challenge(device, challenge_id)
    if not isinstance(number, int) or isinstance(number, bool):  # malformed, not a guess: keep the challenge
        raise InvalidInput(_("number 必须是整数"), code="invalid_input")
    if number != ticket.match_number:
        _deny(ticket, device, tickets.NUMBER_MISMATCH, client)
        raise Conflict(_("数字不匹配,本次请求已取消;请核对网页上显示的数字"), code="number_mismatch")
    tickets.decide(ticket, device.device_id, approve=True)
    tickets.record(ticket, f"app_{ticket.purpose}_approved", "ok", client, detail="push")
    return {"state": ticket.state, "purpose": ticket.purpose}


def deny(device: Device, challenge_id: int, reason: str, client: Client | None = None) -> dict:
    """取消授权 / 不是本人操作."""
    ticket = _challenge(device, challenge_id)
    _deny(ticket, device, tickets.NOT_ME if reason == tickets.NOT_ME else tickets.DECLINED, client)
    return {"state": ticket.state, "purpose": ticket.purpose}


def preview_scan(device: Device, ticket_token: str) -> dict:
    """扫码登录: what the App shows about a scanned login / unbind / 修改 / verify QR before approving it."""
    ticket = _scanned(device, ticket_token)
    return {
        "purpose": ticket.purpose,
        "account": ticket.user.account,
        "name": ticket.user.name,
        "request": tickets.describe(ticket),
        "expires_in": tickets.expires_in(ticket),
    }


def approve_scan(device: Device, ticket_token: str, trust_device: bool, client: Client | None = None) -> dict:
    """The App scanned a QR on the web page (扫二维码): approve that login / unbind / 修改."""
    ticket = _scanned(device, ticket_token)
    tickets.decide(ticket, device.device_id, approve=True, trust_device=trust_device and ticket.purpose == "login")
    tickets.record(ticket, f"app_{ticket.purpose}_approved", "ok", client, detail="qr")
    return {"state": ticket.state, "purpose": ticket.purpose}


def remove(device: Device, client: Client | None = None) -> None:
    """The App removed this account: the App factor goes, like 解绑 (policy permitting), with this device."""
    user = User.get_by_id(device.user_id)
    factors.remove(user, METHOD, client or Client(), via="app")


def prune_signatures() -> int:
    """Forget signatures older than the accepted clock skew (they are refused as stale anyway)."""
    cutoff = utcnow() - timedelta(seconds=CLOCK_SKEW * 3)
    return DeviceSignature.delete().where(DeviceSignature.created_at < cutoff).execute()


def _challenge(device: Device, challenge_id: int) -> Ticket:
    ticket = Ticket.get_or_none((Ticket.id == challenge_id) & (Ticket.method == METHOD) & (Ticket.channel == "push"))
    if ticket is None or ticket.user_id != device.user_id:
        raise NotFound(_("授权请求不存在"), code="challenge_not_found")
    if tickets.state_of(ticket) == tickets.EXPIRED:
        raise Expired(_("授权请求已过期"), code="challenge_expired")
    tickets.require_live_session(ticket)
    return ticket


def _scanned(device: Device, ticket_token: str) -> Ticket:
    """The QR ticket the App scanned, if it is one this device may approve."""
    ticket = tickets.by_token(ticket_token, METHOD)
    if ticket.purpose == "bind" or ticket.channel != "qr":
        raise InvalidInput(_("该二维码不能用于授权"), code="wrong_purpose")
    _check_owner(ticket, device)
    return ticket


def _deny(ticket: Ticket, device: Device, reason: str, client: Client | None) -> None:
    tickets.decide(ticket, device.device_id, approve=False, deny_reason=reason)
    outcome = "not_me" if reason == tickets.NOT_ME else "denied"
    tickets.record(ticket, f"app_{ticket.purpose}_denied", outcome, client, detail=reason)


def _check_owner(ticket: Ticket, device: Device) -> None:
    if ticket.user_id != device.user_id:
        raise NotAllowed(_("该帐号未绑定此设备"), code="not_bound_to_you")
    tickets.require_live_session(ticket)


def _is_bound(device: Device) -> bool:
    return Factor.holding(METHOD, device.device_id).where(Factor.user == device.user_id).exists()


def _label(value: object, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if ch.isprintable())[:limit].strip()
