"""A loopback stand-in for the 短信 providers: Aliyun Dysmsapi and Tencent Cloud SMS ``SendSms``.

One threaded HTTP server on 127.0.0.1 answers both: a request with an ``X-TC-Action`` header is
Tencent (API 3.0, POST JSON); any other GET with a query or POST form is Aliyun (RPC style, signed
with the method it arrived with). Like the real
services it recomputes each request's signature from the known test secret, written here
independently of ``portal.services.sms_gateway`` (a signing bug there fails the tests), and answers
a wrong one with the provider's own error (``SignatureDoesNotMatch``, ``AuthFailure.SignatureFailure``);
it also checks the timestamp, the nonce (Aliyun), the sign name, the template, the app id and the
number. Accepted messages are kept in ``messages``.

    stub = SmsStub().start()           # or the ``sms_stub`` fixture
    app.config.update(stub.config("aliyun"))   # SMS_PROVIDER, SMS_API_BASE=stub.url, keys, sign, template
    ...
    stub.last_code("+8613800138000")   # the code in the newest accepted message to that number
    stub.fail("isv.BUSINESS_LIMIT_CONTROL")   # every later request gets that provider error
    stub.slow(3)                       # answer only after 3 s (longer than the client's timeout)
    stub.slow(3, trickle=True)         # headers at once, the body a byte at a time over 3 s
    stub.garbage()                     # answer 200 with a body that is not JSON
    stub.reset()                       # back to normal, nothing recorded
    stub.stop()
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.helpers import LOOPBACK

KEY_ID = "LTAI5tStubKeyId0000"
SECRET = "stub-secret-Kq8w+/=&9"  # characters that percent-encoding and the "&" key suffix must get right
SIGN_NAME = "明德理工学院"
TEMPLATE = "SMS_465180001"
APP_ID = "1400900001"
ALIYUN_SKEW = 15 * 60  # seconds Aliyun accepts between its clock and the Timestamp
TENCENT_SKEW = 5 * 60
DEFAULT_FAILURE = {"aliyun": "isv.BUSINESS_LIMIT_CONTROL", "tencent": "LimitExceeded.PhoneNumberDailyLimit"}
FORM = "application/x-www-form-urlencoded"
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


@dataclass(frozen=True)
class SentSms:
    """One message the stub accepted."""

    provider: str  # aliyun | tencent
    phone: str  # E.164, whatever form the provider was sent
    raw_phone: str  # as sent (Aliyun: 13800138000; Tencent: +8613800138000)
    sign_name: str
    template: str
    params: dict | list  # Aliyun TemplateParam ({"code": "123456"}); Tencent TemplateParamSet (["123456"])

    @property
    def code(self) -> str:
        return str(self.params.get("code", "")) if isinstance(self.params, dict) else str(self.params[0])


class _Refused(Exception):
    def __init__(self, code: str, status: int = 400):
        super().__init__(code)
        self.code = code
        self.status = status


@dataclass
class SmsStub:
    key_id: str = KEY_ID
    secret: str = SECRET
    sign_name: str = SIGN_NAME
    template: str = TEMPLATE
    app_id: str = APP_ID
    messages: list[SentSms] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (provider, error code) of refused requests
    requests: int = 0  # every request that reached the stub

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._nonces: set[str] = set()
        self._failure: str | None = None
        self._failure_as_error = False
        self._delay = 0.0
        self._trickle = False
        self._garbage = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SmsStub:
        handler = type("Handler", (_Handler,), {"stub": self})
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True  # a request held by slow() never delays stop()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._wake.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """What PORTAL_SMS_API_BASE names to send through this stub (either provider)."""
        assert self._server is not None, "start() the stub first"
        return f"http://{LOOPBACK}:{self._server.server_port}/"

    def config(self, provider: str, **overrides) -> dict:
        """The portal settings (SMS_*) that send through this stub as ``provider``."""
        settings = {
            "SMS_PROVIDER": provider,
            "SMS_API_BASE": self.url,
            "SMS_KEY_ID": self.key_id,
            "SMS_KEY_SECRET": self.secret,
            "SMS_SIGN_NAME": self.sign_name,
            "SMS_TEMPLATE": self.template,
            "SMS_APP_ID": self.app_id if provider == "tencent" else "",
        }
        settings.update(overrides)
        return settings

    # -- behaviour switches ---------------------------------------------------------------------

    def fail(self, code: str | None = None, *, as_error: bool = False) -> None:
        """Refuse every later (well-signed) message with the provider's error ``code``.

        Aliyun: ``{"Code": code}``. Tencent: the code in ``SendStatusSet[0].Code`` (how it reports a
        number it will not text), or in ``Response.Error`` with ``as_error=True``.
        """
        with self._lock:
            self._failure = code or ""
            self._failure_as_error = as_error

    def slow(self, seconds: float, *, trickle: bool = False) -> None:
        """Hold every later answer back for ``seconds`` (reset() or stop() releases it early).

        ``trickle``: send the headers at once and spread the body over ``seconds``, a byte at a time
        (each read of the client is quick; only a bound on the whole answer stops it).
        """
        with self._lock:
            self._delay = seconds
            self._trickle = trickle
            self._wake.clear()

    def garbage(self) -> None:
        """Answer every later request with 200 and an HTML page instead of JSON."""
        with self._lock:
            self._garbage = True

    def reset(self) -> None:
        """Normal behaviour again; forget what was sent."""
        self._wake.set()
        with self._lock:
            self._failure = None
            self._failure_as_error = False
            self._delay = 0.0
            self._trickle = False
            self._garbage = False
            self.messages.clear()
            self.rejections.clear()
            self.requests = 0

    # -- reading what was sent ------------------------------------------------------------------

    def sent_to(self, phone_e164: str) -> list[SentSms]:
        with self._lock:
            return [m for m in self.messages if m.phone == phone_e164]

    def codes(self, phone_e164: str) -> list[str]:
        return [m.code for m in self.sent_to(phone_e164)]

    def last_code(self, phone_e164: str) -> str:
        codes = self.codes(phone_e164)
        if not codes:
            raise AssertionError(f"no message to {phone_e164} accepted by the SMS stub")
        return codes[-1]

    def wait_for_code(self, phone_e164: str, *, after: int = 0, timeout: float = 10.0) -> str:
        """The code of the newest message to the number beyond the first ``after`` (waits for it; e2e)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = self.codes(phone_e164)
            if len(codes) > after:
                return codes[-1]
            time.sleep(0.05)
        raise AssertionError(f"no message to {phone_e164} within {timeout} s")

    # -- the two providers ----------------------------------------------------------------------

    def _state(self) -> tuple[str | None, bool, float, bool]:
        with self._lock:
            self.requests += 1
            return self._failure, self._failure_as_error, self._delay, self._garbage

    def _hold(self, delay: float) -> None:
        if delay and not self._trickle:
            self._wake.wait(delay)

    def _write(self, wfile, body: bytes) -> None:
        if not (self._trickle and self._delay):
            wfile.write(body)
            return
        pause = self._delay / max(len(body), 1)
        for i in range(len(body)):
            wfile.write(body[i : i + 1])
            wfile.flush()
            if self._wake.wait(pause):
                wfile.write(body[i + 1 :])
                return

    def _refused(self, provider: str, code: str) -> None:
        with self._lock:
            self.rejections.append((provider, code))

    def _accept(self, message: SentSms) -> None:
        with self._lock:
            self.messages.append(message)

    def aliyun(self, method: str, query: str) -> tuple[int, dict]:
        """GET /?Action=SendSms&… or the same as a POST form: Dysmsapi 2017-05-25."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        common = {
            "Format": "JSON",
            "Version": "2017-05-25",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "RegionId": "cn-hangzhou",
        }
        for name, expected in common.items():
            if params.get(name) != expected:
                raise _Refused(f"InvalidParameter.{name}" if name in params else f"Missing{name}")
        for name in ("AccessKeyId", "SignatureNonce", "Timestamp", "Signature"):
            if not params.get(name):
                raise _Refused(f"Missing{name}")
        if params["AccessKeyId"] != self.key_id:
            raise _Refused("InvalidAccessKeyId.NotFound", 404)
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise _Refused("InvalidTimeStamp.Format") from exc
        if abs(time.time() - stamp.timestamp()) > ALIYUN_SKEW:
            raise _Refused("InvalidTimeStamp.Expired")
        signature = params.pop("Signature")
        if not hmac.compare_digest(signature, _aliyun_sign(method, params, self.secret)):
            raise _Refused("SignatureDoesNotMatch")
        with self._lock:
            if params["SignatureNonce"] in self._nonces:
                raise _Refused("SignatureNonceUsed")
            self._nonces.add(params["SignatureNonce"])
        if params.get("Action") != "SendSms":
            raise _Refused("InvalidAction.NotFound", 404)
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise _Refused(f"Missing{name}")
        if params["SignName"] != self.sign_name:
            return 200, _aliyun_answer("isv.SMS_SIGNATURE_ILLEGAL")
        if params["TemplateCode"] != self.template:
            return 200, _aliyun_answer("isv.SMS_TEMPLATE_ILLEGAL")
        phone = params["PhoneNumbers"]
        if not re.fullmatch(r"1[3-9][0-9]{9}|(?!86)[1-9][0-9]{6,14}", phone):  # mainland: 11 digits, no 86
            return 200, _aliyun_answer("isv.MOBILE_NUMBER_ILLEGAL")
        try:
            template_param = json.loads(params.get("TemplateParam", ""))
        except ValueError:
            return 200, _aliyun_answer("isv.INVALID_JSON_PARAM")
        if not isinstance(template_param, dict) or not template_param.get("code"):
            return 200, _aliyun_answer("isv.TEMPLATE_MISSING_PARAMETERS")
        failure, _, _, _ = self._state_peek()
        if failure is not None:
            return 200, _aliyun_answer(failure or DEFAULT_FAILURE["aliyun"])
        e164 = "+86" + phone if len(phone) == 11 and phone.startswith("1") else "+" + phone
        self._accept(SentSms("aliyun", e164, phone, params["SignName"], params["TemplateCode"], template_param))
        answer = _aliyun_answer("OK")
        answer["BizId"] = f"{int(time.time())}^{uuid.uuid4().int % 10**10}"
        return 200, answer

    def tencent(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        """POST / with X-TC-Action: SendSms: Tencent Cloud SMS 2021-01-11 (errors: 200 with Response.Error)."""
        if headers.get("x-tc-version") != "2021-01-11":
            raise _Refused("InvalidParameterValue.Version")  # not the real code: the stub knows one version
        if not headers.get("x-tc-region"):
            raise _Refused("MissingParameter")
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
            r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
            headers.get("authorization", ""),
        )
        if not match:
            raise _Refused("AuthFailure.InvalidAuthorization")
        secret_id, date, service, signed_headers, signature = match.groups()
        if secret_id != self.key_id:
            raise _Refused("AuthFailure.SecretIdNotFound")
        try:
            timestamp = int(headers.get("x-tc-timestamp", ""))
        except ValueError as exc:
            raise _Refused("AuthFailure.InvalidAuthorization") from exc
        if abs(time.time() - timestamp) > TENCENT_SKEW:
            raise _Refused("AuthFailure.SignatureExpire")
        signed = signed_headers.split(";")
        if service != "sms" or date != datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d"):
            raise _Refused("AuthFailure.SignatureFailure")
        if "content-type" not in signed or "host" not in signed or any(h not in headers for h in signed):
            raise _Refused("AuthFailure.SignatureFailure")
        expected = _tencent_sign(self.secret, method, path, headers, signed, body, timestamp, date)
        if not hmac.compare_digest(signature, expected):
            raise _Refused("AuthFailure.SignatureFailure")
        if headers.get("x-tc-action") != "SendSms":
            raise _Refused("InvalidAction")
        try:
            params = json.loads(body)
        except ValueError as exc:
            raise _Refused("InvalidParameter") from exc
        for name in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
            if not params.get(name):
                raise _Refused("MissingParameter")
        if params["SmsSdkAppId"] != self.app_id:
            raise _Refused("InvalidParameterValue.SdkAppIdNotExist")  # stub's choice of name
        if params.get("SignName") != self.sign_name:
            raise _Refused("FailedOperation.SignatureIncorrectOrUnapproved")
        if params["TemplateId"] != self.template:
            raise _Refused("FailedOperation.TemplateIncorrectOrUnapproved")
        template_params = params.get("TemplateParamSet")
        if not isinstance(template_params, list) or len(template_params) != 1:
            raise _Refused("FailedOperation.TemplateParamSetNotMatchApprovedTemplate")
        phones = params["PhoneNumberSet"]
        if not isinstance(phones, list) or len(phones) != 1 or not re.fullmatch(r"\+[1-9][0-9]{6,14}", phones[0]):
            raise _Refused("InvalidParameterValue.IncorrectPhoneNumber")
        failure, as_error, _, _ = self._state_peek()
        if failure is not None and as_error:
            raise _Refused(failure or "InternalError.Timeout", 200)
        code = "Ok" if failure is None else (failure or DEFAULT_FAILURE["tencent"])
        if failure is None:
            self._accept(
                SentSms("tencent", phones[0], phones[0], params["SignName"], params["TemplateId"], template_params)
            )
        status = {
            "SerialNo": uuid.uuid4().hex,
            "PhoneNumber": phones[0],
            "Fee": 1 if failure is None else 0,
            "SessionContext": "",
            "Code": code,
            "Message": "send success" if failure is None else "stub refused",
            "IsoCode": "CN" if phones[0].startswith("+86") else "",
        }
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": str(uuid.uuid4())}}

    def _state_peek(self) -> tuple[str | None, bool, float, bool]:
        with self._lock:
            return self._failure, self._failure_as_error, self._delay, self._garbage


def _aliyun_answer(code: str) -> dict:
    message = "OK" if code == "OK" else f"stub: {code}"
    return {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper()}


def _percent(value: str) -> str:
    """RFC 3986: unreserved bytes as they are, every other UTF-8 byte as %XX (upper case)."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in value.encode("utf-8"))


def _aliyun_sign(method: str, params: dict[str, str], secret: str) -> str:
    pairs = sorted((_percent(k), _percent(v)) for k, v in params.items())
    canonical = "&".join(f"{k}={v}" for k, v in pairs)
    to_sign = method + "&" + _percent("/") + "&" + _percent(canonical)
    return base64.b64encode(hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def _tencent_sign(
    secret: str,
    method: str,
    path: str,
    headers: dict[str, str],
    signed: list[str],
    body: bytes,
    timestamp: int,
    date: str,
) -> str:
    canonical_headers = "".join(f"{h}:{headers[h].strip().lower()}\n" for h in signed)
    request = f"{method}\n{path}\n\n{canonical_headers}\n{';'.join(signed)}\n{hashlib.sha256(body).hexdigest()}"
    scope = f"{date}/sms/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"

    def mac(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    signing_key = mac(mac(mac(("TC3" + secret).encode(), date), "sms"), "tc3_request")
    return hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    stub: SmsStub
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # one line per request is noise in test output
        pass

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _, _, delay, garbage = self.stub._state()
        self.stub._hold(delay)
        if garbage:
            self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        provider = "tencent" if self.command == "POST" and "x-tc-action" in headers else "aliyun"
        try:
            if provider == "tencent":
                status, answer = self.stub.tencent(self.command, parts.path, headers, body)
            elif self.command == "GET" and parts.query:
                status, answer = self.stub.aliyun("GET", parts.query)
            elif self.command == "POST" and headers.get("content-type", "").startswith(FORM):
                status, answer = self.stub.aliyun("POST", body.decode("ascii", "replace"))
            else:
                self._send(404, b'{"Code":"InvalidAction.NotFound"}', "application/json")
                return
        except _Refused as refused:
            self.stub._refused(provider, refused.code)
            if provider == "tencent":
                error = {"Code": refused.code, "Message": f"stub: {refused.code}"}
                status, answer = 200, {"Response": {"Error": error, "RequestId": str(uuid.uuid4())}}
            else:
                status, answer = refused.status, _aliyun_answer(refused.code)
        else:
            if answer.get("Code", "OK") != "OK":
                self.stub._refused(provider, answer["Code"])
            statuses = answer.get("Response", {}).get("SendStatusSet") or [{}]
            if statuses[0].get("Code", "Ok") != "Ok":
                self.stub._refused(provider, statuses[0]["Code"])
        self._send(status, json.dumps(answer, ensure_ascii=False).encode(), "application/json;charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            self.stub._write(self.wfile, body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): as a real server
            pass


@pytest.fixture(scope="session")
def sms_stub_server():
    """One SMS stub for the whole run."""
    stub = SmsStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def sms_stub(sms_stub_server) -> SmsStub:
    """The SMS stub, reset (normal behaviour, nothing recorded) before and after each test."""
    sms_stub_server.reset()
    yield sms_stub_server
    sms_stub_server.reset()
