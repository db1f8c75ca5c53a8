"""Outgoing text messages (短信 codes) through the provider named by PORTAL_SMS_PROVIDER.

- ``console``: development prints each message to the log (``make run`` shows the code in the
  terminal); the default there, refused in production (codes would sit in the log).
- ``aliyun``: Dysmsapi ``SendSms`` (RPC style, version 2017-05-25, HMAC-SHA1 signature). Sent as a
  POST form (the RPC style's other documented method, string to sign ``POST&%2F&…``) so that the code
  and the signature stay out of URLs, which proxies and urllib3's debug log record.
  ``PhoneNumbers`` is the 11-digit national number for +86 (Aliyun's documented form for the
  mainland) and country code + number without "+" or "00" for other countries (its international
  form, e.g. 85291234567).
- ``tencent``: SMS ``SendSms`` (version 2021-01-11, TC3-HMAC-SHA256 signature, POST JSON); numbers in
  E.164 (``+8613800138000``), as Tencent documents.

Both providers send only approved templates: PORTAL_SMS_TEMPLATE (Aliyun ``TemplateCode``, Tencent
``TemplateId``) takes one variable, the code (Aliyun ``${code}``; Tencent ``{1}``), and
PORTAL_SMS_SIGN_NAME is the approved 签名. PORTAL_SMS_API_BASE replaces the provider's endpoint (the
loopback stub in tests).

Every failure (refused, unreachable, timed out, an HTTP error, a provider error code, an answer that
is not the provider's JSON) raises :class:`SmsFailed`, a 503-style :class:`Unavailable` with one
user message; ``detail`` carries the provider's code (or ``timeout``, ``connection_error``,
``http_502``, ``bad_json``, ``not_configured``) for the audit log. A call waits at most about
``min(3, SMS_TIMEOUT)`` s to connect plus ``SMS_TIMEOUT`` s (default 5) for the whole answer.
Secrets, signatures and codes (outside ``console``) never reach the log; numbers are logged masked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import requests
from flask import current_app
from flask_babel import lazy_gettext as _l
from urllib3.exceptions import ReadTimeoutError

from portal.config import SMS_REQUIRED
from portal.services import phone_numbers
from portal.services.errors import Unavailable

log = logging.getLogger(__name__)

FAILED = _l("短信发送失败,请稍后重试")
CONNECT_TIMEOUT = 3.0  # seconds; the read timeout (and the bound on the whole answer) is SMS_TIMEOUT
MAX_ANSWER = 64 * 1024  # bytes: a SendSms answer is a few hundred
ENDPOINTS = {"aliyun": "https://dysmsapi.aliyuncs.com/", "tencent": "https://sms.tencentcloudapi.com/"}
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

ALIYUN_VERSION = "2017-05-25"
ALIYUN_REGION = "cn-hangzhou"
TENCENT_VERSION = "2021-01-11"
TENCENT_REGION = "ap-guangzhou"
TENCENT_SERVICE = "sms"
TENCENT_CONTENT_TYPE = "application/json; charset=utf-8"


class SmsFailed(Unavailable):
    """The message was not accepted by the provider; ``detail`` says why (for the audit log, not the user)."""

    code = "sms_failed"

    def __init__(self, detail: str, provider: str = ""):
        super().__init__(str(FAILED))  # raised in a request: the language it is shown in
        self.detail = detail
        self.provider = provider


def provider() -> str:
    return str(current_app.config.get("SMS_PROVIDER") or "").strip().lower()


def configured() -> bool:
    """Can codes be texted? (A fully configured provider, or the console outside production.)"""
    name = provider()
    if name == "console":
        return current_app.config["ENV"] != "production"
    if name not in SMS_REQUIRED:
        return False
    return all(str(current_app.config.get(key) or "").strip() for key in SMS_REQUIRED[name])


def send_code(phone_e164: str, purpose: str, code: str) -> None:
    """Text ``code`` to ``phone_e164`` with the configured template; SmsFailed unless the provider accepted it.

    ``purpose`` (login, bind, …) only labels the log line: the template is the same for every purpose.
    """
    if not E164.match(phone_e164 or ""):
        raise ValueError("send_code needs a number in E.164 form (phone_numbers.normalise)")
    name = provider()
    if not configured():
        log.error("SMS to %s not sent: PORTAL_SMS_PROVIDER %r is not configured", _masked(phone_e164), name)
        raise SmsFailed("not_configured", name)
    if name == "console":
        current_app.logger.warning(
            "PORTAL_SMS_PROVIDER=console: development prints the message instead.\n短信 to %s: 验证码 %s (%s)",
            phone_e164,
            code,
            purpose,
        )
        return
    started = time.monotonic()
    try:
        request_id = _SENDERS[name](phone_e164, code)
    except SmsFailed as exc:
        exc.provider = name
        log.error(
            "SMS (%s) to %s via %s failed after %.1f s: %s",
            purpose,
            _masked(phone_e164),
            name,
            time.monotonic() - started,
            exc.detail,
        )
        raise
    log.info("SMS (%s) to %s accepted by %s (request %s)", purpose, _masked(phone_e164), name, request_id)


# -- Aliyun Dysmsapi (RPC style) ------------------------------------------------------------------


def aliyun_encode(value: str) -> str:
    """Aliyun's percent-encoding: RFC 3986 unreserved characters stay, everything else %XX of its UTF-8."""
    return quote(value, safe="~")


def aliyun_signature(method: str, params: dict[str, str], secret: str) -> str:
    """Base64 HMAC-SHA1 (key: secret + "&") of METHOD&%2F&encode(sorted, encoded query)."""
    canonical = "&".join(f"{aliyun_encode(k)}={aliyun_encode(v)}" for k, v in sorted(params.items()))
    string_to_sign = f"{method}&{aliyun_encode('/')}&{aliyun_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def aliyun_phone(phone_e164: str) -> str:
    """+8613800138000 → 13800138000; +85291234567 → 85291234567."""
    digits = phone_e164.removeprefix("+")
    return digits.removeprefix("86") if digits.startswith("86") and len(digits) == 13 else digits


def _send_aliyun(phone_e164: str, code: str) -> str:
    config = current_app.config
    params = {
        "AccessKeyId": str(config["SMS_KEY_ID"]),
        "Action": "SendSms",
        "Format": "JSON",
        "RegionId": ALIYUN_REGION,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": ALIYUN_VERSION,
        "PhoneNumbers": aliyun_phone(phone_e164),
        "SignName": str(config["SMS_SIGN_NAME"]),
        "TemplateCode": str(config["SMS_TEMPLATE"]),
        "TemplateParam": json.dumps({"code": code}, separators=(",", ":")),
    }
    signature = aliyun_signature("POST", params, str(config["SMS_KEY_SECRET"]))
    form = "&".join(f"{aliyun_encode(k)}={aliyun_encode(v)}" for k, v in sorted(params.items()))
    status, answer = _exchange(
        "POST",
        _endpoint("aliyun"),
        data=f"{form}&Signature={aliyun_encode(signature)}".encode("ascii"),
        headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
    )
    if not isinstance(answer, dict):
        raise SmsFailed(_transport_detail(status))
    provider_code = str(answer.get("Code") or "")
    if provider_code != "OK":
        raise SmsFailed(provider_code or _transport_detail(status))
    if status != 200:
        raise SmsFailed(f"http_{status}")
    return str(answer.get("RequestId") or answer.get("BizId") or "")


# -- Tencent Cloud SMS (API 3.0) ----------------------------------------------------------------


def tencent_signature(
    secret: str, *, method: str, path: str, headers: dict[str, str], signed: list[str], body: bytes, timestamp: int
) -> str:
    """Hex TC3-HMAC-SHA256 signature over the canonical request (``headers`` keyed by lower-case name)."""
    canonical_headers = "".join(f"{name}:{headers[name].strip().lower()}\n" for name in signed)
    canonical_request = "\n".join(
        [method, path, "", canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{TENCENT_SERVICE}/tc3_request"
    string_to_sign = "\n".join(
        ["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"TC3{secret}".encode()
    for part in (date, TENCENT_SERVICE, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _send_tencent(phone_e164: str, code: str) -> str:
    config = current_app.config
    url = _endpoint("tencent")
    parts = urlsplit(url)
    host = _host_header(parts)
    path = parts.path or "/"
    body = json.dumps(
        {
            "PhoneNumberSet": [phone_e164],
            "SmsSdkAppId": str(config["SMS_APP_ID"]),
            "SignName": str(config["SMS_SIGN_NAME"]),
            "TemplateId": str(config["SMS_TEMPLATE"]),
            "TemplateParamSet": [code],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    timestamp = int(time.time())
    signed = ["content-type", "host"]
    signature = tencent_signature(
        str(config["SMS_KEY_SECRET"]),
        method="POST",
        path=path,
        headers={"content-type": TENCENT_CONTENT_TYPE, "host": host},
        signed=signed,
        body=body,
        timestamp=timestamp,
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    authorization = (
        f"TC3-HMAC-SHA256 Credential={config['SMS_KEY_ID']}/{date}/{TENCENT_SERVICE}/tc3_request, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    headers = {
        "Authorization": authorization,
        "Content-Type": TENCENT_CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": "SendSms",
        "X-TC-Version": TENCENT_VERSION,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": TENCENT_REGION,
    }
    status, answer = _exchange("POST", url, headers=headers, data=body)
    response = answer.get("Response") if isinstance(answer, dict) else None
    if not isinstance(response, dict):
        raise SmsFailed(_transport_detail(status))
    error = response.get("Error")
    if error:
        raise SmsFailed(str(error.get("Code") if isinstance(error, dict) else error) or "error")
    statuses = response.get("SendStatusSet")
    first = statuses[0] if isinstance(statuses, list) and statuses and isinstance(statuses[0], dict) else {}
    if first.get("Code") != "Ok":
        raise SmsFailed(str(first.get("Code") or "no_send_status"))
    if status != 200:
        raise SmsFailed(f"http_{status}")
    return str(response.get("RequestId") or first.get("SerialNo") or "")


_SENDERS = {"aliyun": _send_aliyun, "tencent": _send_tencent}


# -- HTTP -----------------------------------------------------------------------------------------


def _endpoint(name: str) -> str:
    base = str(current_app.config.get("SMS_API_BASE") or "").strip() or ENDPOINTS[name]
    return base if base.endswith("/") else base + "/"


def _host_header(parts) -> str:
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _timeout() -> float:
    return float(current_app.config.get("SMS_TIMEOUT") or 5)


def _exchange(method: str, url: str, headers: dict[str, str], **kwargs) -> tuple[int, object]:
    """One HTTP request with a bounded wait; (status, parsed JSON or None). SmsFailed if no answer."""
    headers = {**headers, "Accept-Encoding": "identity"}
    read = _timeout()
    deadline = time.monotonic() + min(CONNECT_TIMEOUT, read) + read
    try:
        with requests.request(
            method,
            url,
            headers=headers,
            timeout=(min(CONNECT_TIMEOUT, read), read),
            stream=True,
            allow_redirects=False,
            **kwargs,
        ) as response:
            body = bytearray()
            # read1: one socket read per call (iter_content waits for whole chunks, each read within the
            # timeout), so a trickling answer meets the deadline check; identity encoding, no decoder.
            while chunk := response.raw.read1(4096):
                body += chunk
                if len(body) > MAX_ANSWER:
                    raise SmsFailed("answer_too_large")
                if time.monotonic() > deadline:  # a trickling answer: each read in time, the whole one not
                    raise SmsFailed("timeout")
            status = response.status_code
    except requests.Timeout as exc:
        raise SmsFailed("timeout") from exc
    except requests.ConnectionError as exc:  # requests reports a read timeout in the body this way
        timed_out = bool(exc.args) and isinstance(exc.args[0], ReadTimeoutError)
        raise SmsFailed("timeout" if timed_out else "connection_error") from exc
    except (requests.RequestException, OSError) as exc:  # refused, unreachable, TLS, reset; the URL holds no secret
        raise SmsFailed("connection_error") from exc
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def _transport_detail(status: int) -> str:
    return "bad_json" if status == 200 else f"http_{status}"


def _masked(phone_e164: str) -> str:
    return phone_numbers.mask(phone_e164) if phone_e164 else "?"
