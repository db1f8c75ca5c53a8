"""安全密钥 (WebAuthn): registration and assertion ceremonies; each challenge is one Enrollment row.

The verification itself is py_webauthn's. This module adds what the library leaves to the relying
party: where the challenge lives and that it is used once (a conditional DELETE), which user a
credential belongs to, and the signature counter (a conditional UPDATE, invariant 3). Throttling and
auditing are the caller's, as for the other factors.
"""

from __future__ import annotations

import ipaddress
import json
import unicodedata
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import peewee
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from portal import crypto
from portal.db import db, lock_rows
from portal.models import Enrollment, LoginSession, SecurityKey, User, utcnow
from portal.services.app_passwords import FORBIDDEN_CATEGORIES
from portal.services.errors import Conflict, Expired, InvalidCode, InvalidInput, NotAllowed, NotFound

METHOD = "webauthn"
MAX_KEYS = 10
NAME_MAX = 32
CHALLENGE_TTL = timedelta(minutes=5)  # a bind ceremony: invariant 8
BROWSER_TIMEOUT_MS = 180_000  # the browser gives up before the challenge expires
MAX_CREDENTIAL_JSON = 64 * 1024  # a real response is a few kB
REGISTRATION_PURPOSES = ("bind", "rebind")
# ES256 first: what security keys and phones offer; EdDSA for newer keys, RS256 for Windows Hello.
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
KEY_FIELDS = ("credential_id", "public_key", "sign_count", "transports", "aaguid", "name")

FAILED = _l("安全密钥验证失败,请重试")
EXPIRED = _l("安全密钥操作已过期,请重试")
TOO_MANY = _l("最多可绑定 %(n)s 个安全密钥,请先删除不用的安全密钥", n=MAX_KEYS)
DUPLICATE = _l("该安全密钥已绑定")
IP_ADDRESS = _l("安全密钥需要通过域名访问本站(如 localhost),当前地址是 IP 地址")


def _public_url():
    return urlsplit(str(current_app.config["PUBLIC_URL"]))


def rp_id() -> str:
    """The WebAuthn relying party id: the host of PORTAL_PUBLIC_URL."""
    return (_public_url().hostname or "").rstrip(".")


def origin() -> str:
    """The origin browsers put in clientDataJSON: scheme://host[:port], the default port omitted."""
    parts = _public_url()
    host = rp_id()
    if ":" in host:  # an IPv6 address (the method is unavailable then, but the origin is well formed)
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def unavailable_reason() -> str | None:
    """Why browsers would refuse this site's security keys (a sentence for the settings row), or None."""
    host = rp_id()
    if not host:
        return _("安全密钥需要有效的站点地址(PORTAL_PUBLIC_URL)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return IP_ADDRESS
    local = host == "localhost" or host.endswith(".localhost")  # browsers treat these as secure
    if _public_url().scheme != "https" and not local:
        return _("安全密钥需要通过 https 访问本站")
    return None


def keys_of(user: User) -> list[SecurityKey]:
    return SecurityKey.of_user(user)


def registration_options(session: LoginSession, user: User, purpose: str = "bind") -> str:
    """Options for navigator.credentials.create(), as JSON; the challenge is kept for this session."""
    if purpose not in REGISTRATION_PURPOSES:
        raise ValueError(f"not a registration purpose: {purpose!r}")
    _require_available()
    keys = keys_of(user)
    if len(keys) >= MAX_KEYS:
        raise Conflict(TOO_MANY, code="webauthn_too_many")
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=str(current_app.config["ORG_NAME"]),
        user_name=user.account,
        user_id=_user_handle(user),
        user_display_name=user.name or user.account,
        timeout=BROWSER_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,  # a passkey where the device can keep one
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(key) for key in keys],
        supported_pub_key_algs=ALGORITHMS,
    )
    _store_challenge(session, user, purpose, options.challenge)
    return options_to_json(options)


def finish_registration(
    session: LoginSession, user: User, credential_json: str, name: str, purpose: str | None = None
) -> dict[str, Any]:
    """Verify the browser's new credential; return the fields of the key for ``add_key`` (nothing stored).

    A blank ``name`` becomes "安全密钥 N". The name is checked before the challenge is used, so that
    a refused name can be corrected and the same credential sent again. ``purpose`` limits the
    challenge to "bind" or "rebind" (default: either); the returned dict says which it was.
    """
    data = _parse(credential_json)
    name = _clean_name(name, user)
    if len(keys_of(user)) >= MAX_KEYS:
        raise Conflict(TOO_MANY, code="webauthn_too_many")
    purposes = (purpose,) if purpose else REGISTRATION_PURPOSES
    claimed_purpose, challenge = _claim_challenge(session, user, purposes)
    try:
        verified = verify_registration_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=origin(),
            supported_pub_key_algs=ALGORITHMS,
        )
    except Exception as exc:  # noqa: BLE001 - the library raises many kinds on bad input: never a 500
        raise InvalidCode(FAILED, code="webauthn_failed") from exc
    credential_id = bytes_to_base64url(verified.credential_id)
    if len(credential_id) > SecurityKey.credential_id.max_length:
        raise InvalidCode(_("暂不支持此安全密钥(凭据过长),请换一个安全密钥"), code="webauthn_unsupported")
    if SecurityKey.select().where(SecurityKey.credential_id == credential_id).exists():
        raise Conflict(DUPLICATE, code="webauthn_duplicate")
    return {
        "credential_id": credential_id,
        "public_key": bytes_to_base64url(verified.credential_public_key),
        "sign_count": verified.sign_count,
        "transports": _transports(data),
        "aaguid": verified.aaguid,
        "name": name,
        "purpose": claimed_purpose,
    }


def add_key(user: User, fields: dict[str, Any]) -> SecurityKey:
    """Store a key that ``finish_registration`` verified (inside the caller's transaction, if any)."""
    with db.atomic():
        lock_rows(User.select(User.id).where(User.id == user.id))  # parallel adds cannot pass MAX_KEYS
        if SecurityKey.select().where(SecurityKey.user == user).count() >= MAX_KEYS:
            raise Conflict(TOO_MANY, code="webauthn_too_many")
        try:
            with db.atomic():
                return SecurityKey.create(user=user, **{field: fields[field] for field in KEY_FIELDS})
        except peewee.IntegrityError as exc:
            raise Conflict(DUPLICATE, code="webauthn_duplicate") from exc


def authentication_options(session: LoginSession, user: User, purpose: str) -> str:
    """Options for navigator.credentials.get() naming the user's keys, as JSON; the challenge is kept."""
    if not purpose or purpose in REGISTRATION_PURPOSES:
        raise ValueError(f"not an authentication purpose: {purpose!r}")
    _require_available()
    keys = keys_of(user)
    if not keys:
        raise NotFound(_("未绑定安全密钥"), code="webauthn_no_keys")
    options = generate_authentication_options(
        rp_id=rp_id(),
        timeout=BROWSER_TIMEOUT_MS,
        allow_credentials=[_descriptor(key) for key in keys],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    _store_challenge(session, user, purpose, options.challenge)
    return options_to_json(options)


def verify_assertion(session: LoginSession, user: User, credential_json: str, purpose: str) -> SecurityKey:
    """Check an assertion by one of the user's keys against this session's challenge (used once).

    The counter is compared only after the signature holds, so that a forged response cannot make
    a key look cloned.
    """
    data = _parse(credential_json)
    _purpose, challenge = _claim_challenge(session, user, (purpose,))
    key = _key_of(user, data)
    try:
        verified = verify_authentication_response(
            credential=data,
            expected_challenge=challenge,
            expected_rp_id=rp_id(),
            expected_origin=origin(),
            credential_public_key=base64url_to_bytes(key.public_key),
            credential_current_sign_count=0,  # the counter is checked below, with its own error code
        )
    except Exception as exc:  # noqa: BLE001 - the library raises many kinds on bad input: never a 500
        raise InvalidCode(FAILED, code="webauthn_failed") from exc
    if not claim_counter(key, verified.new_sign_count):
        raise InvalidCode(_("安全密钥的使用次数异常(可能被复制),请重试或联系管理员"), code="webauthn_cloned")
    return SecurityKey.get_by_id(key.id)


def claim_counter(key: SecurityKey, new_count: int) -> bool:
    """Record a use: one conditional UPDATE, so that one assertion passes once even in parallel.

    When either counter is non-zero the new one must be greater; keys that always say 0 (many
    passkeys) rely on the single-use challenge alone.
    """
    advanced = (SecurityKey.sign_count == 0) if new_count == 0 else (SecurityKey.sign_count < new_count)
    query = SecurityKey.update(sign_count=new_count, last_used_at=utcnow()).where((SecurityKey.id == key.id) & advanced)
    return query.execute() == 1


def remove_key(user: User, key_id: int) -> SecurityKey | None:
    """Delete one of the user's keys; the deleted row, or None if it was not theirs (or is gone)."""
    key = SecurityKey.get_or_none((SecurityKey.id == key_id) & (SecurityKey.user == user))
    if key is None:
        return None
    deleted = SecurityKey.delete().where((SecurityKey.id == key.id) & (SecurityKey.user == user)).execute()
    return key if deleted == 1 else None


def _require_available() -> None:
    reason = unavailable_reason()
    if reason:
        raise NotAllowed(reason, code="webauthn_unavailable")


def _user_handle(user: User) -> bytes:
    """A stable, opaque user.id for authenticators: no account name or row number leaves the server."""
    return bytes.fromhex(crypto.token_hash(f"webauthn-user:{user.id}"))


def _descriptor(key: SecurityKey) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in key.transports.split(",") if t]
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(key.credential_id), transports=transports or None)


def _store_challenge(session: LoginSession, user: User, purpose: str, challenge: bytes) -> None:
    """Keep the challenge for this session and purpose, replacing an earlier one."""
    with db.atomic():
        Enrollment.delete().where(
            (Enrollment.session == session) & (Enrollment.method == METHOD) & (Enrollment.purpose == purpose)
        ).execute()
        Enrollment.create(
            user=user,
            session=session,
            method=METHOD,
            purpose=purpose,
            secret=bytes_to_base64url(challenge),
            expires_at=utcnow() + CHALLENGE_TTL,
        )


def _claim_challenge(session: LoginSession, user: User, purposes: tuple[str, ...]) -> tuple[str, bytes]:
    """Use this session's live challenge once: the conditional DELETE decides between parallel uses."""
    row = (
        Enrollment.select()
        .where(
            (Enrollment.session == session)
            & (Enrollment.user == user)
            & (Enrollment.method == METHOD)
            & Enrollment.purpose.in_(purposes)
            & (Enrollment.expires_at > utcnow())
        )
        .order_by(Enrollment.id.desc())
        .first()
    )
    if row is None:
        raise Expired(EXPIRED, code="webauthn_expired")
    claimed = Enrollment.delete().where((Enrollment.id == row.id) & (Enrollment.expires_at > utcnow()))
    if claimed.execute() != 1:
        raise Expired(EXPIRED, code="webauthn_expired")
    return row.purpose, base64url_to_bytes(row.secret)


def _parse(credential_json: str) -> dict[str, Any]:
    """The browser's credential as a dict; anything else is a failed attempt."""
    if not isinstance(credential_json, str) or len(credential_json) > MAX_CREDENTIAL_JSON:
        raise InvalidCode(FAILED, code="webauthn_malformed")
    try:
        data = json.loads(credential_json)
    except ValueError as exc:
        raise InvalidCode(FAILED, code="webauthn_malformed") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rawId"), str):
        raise InvalidCode(FAILED, code="webauthn_malformed")
    return data


def _key_of(user: User, data: dict[str, Any]) -> SecurityKey:
    try:
        credential_id = bytes_to_base64url(base64url_to_bytes(data["rawId"]))
    except ValueError as exc:
        raise InvalidCode(FAILED, code="webauthn_malformed") from exc
    key = SecurityKey.get_or_none((SecurityKey.user == user) & (SecurityKey.credential_id == credential_id))
    if key is None:
        raise InvalidCode(_("此安全密钥未绑定本账号,请换一个安全密钥重试"), code="webauthn_unknown_key")
    return key


def _transports(data: dict[str, Any]) -> str:
    """The transports the browser reported (known values only), as stored: comma-separated."""
    response = data.get("response")
    reported = response.get("transports") if isinstance(response, dict) else None
    known = {t.value for t in AuthenticatorTransport}
    kept = [t for t in reported if isinstance(t, str) and t in known] if isinstance(reported, list) else []
    text = ",".join(dict.fromkeys(kept))
    return text if len(text) <= SecurityKey.transports.max_length else ""


def _clean_name(raw: str | None, user: User) -> str:
    name = unicodedata.normalize("NFC", (raw or "").strip())
    if not name:  # the first "安全密钥 N" not taken by one of the user's keys, named in the user's language
        taken = {key.name for key in keys_of(user)}
        return next(
            default for default in (_("安全密钥 %(n)s", n=n) for n in range(1, MAX_KEYS + 2)) if default not in taken
        )
    if len(name) > NAME_MAX:
        raise InvalidInput(_("安全密钥名称不能超过 %(n)s 个字符", n=NAME_MAX), code="name_too_long")
    if any(unicodedata.category(ch) in FORBIDDEN_CATEGORIES for ch in name):
        raise InvalidInput(_("安全密钥名称不能包含控制字符"), code="name_invalid")
    return name
