"""nginx mail ``auth_http``: who may ask, and the answer headers for one IMAP/POP3/SMTP login.

nginx sends ``Auth-User`` and ``Auth-Pass`` URL-encoded; on success it wants the backend as an IP
address (``Auth-Server``) and port, on failure a message for the client (``Auth-Status``) and,
to let the client try again on the same connection, ``Auth-Wait`` seconds.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from flask import current_app

from portal import config as config_module
from portal import metrics
from portal.services import app_passwords

log = logging.getLogger(__name__)

AUTH_WAIT = 3  # seconds nginx waits before the client may try again
THROTTLED_WAIT = 15
# nginx keeps memory per attempt until the session ends: after this many, answer without Auth-Wait
# so that nginx closes the connection (its documentation asks for 10-20).
MAX_ATTEMPTS = 10
SMTP_AUTH_FAILED = "535 5.7.8"  # RFC 4954: authentication credentials invalid
SMTP_TEMPORARY = "454 4.7.0"  # RFC 4954: temporary authentication failure
TEMPORARY = "Temporary server problem, try again later"
UNSUPPORTED_METHOD = "Unsupported authentication method"
PLAINTEXT_METHODS = ("plain", "login")  # apop / cram-md5 would need the stored password in clear


@dataclass(frozen=True)
class AuthRequest:
    """The auth_http request headers, as received (user and password still URL-encoded)."""

    method: str
    user: str
    password: str
    protocol: str
    attempt: str
    client_ip: str


def caller_allowed(remote_addr: str | None, secret: str | None) -> bool:
    """Only the mail proxy may ask: shared secret and/or allow-list; loopback if neither is configured."""
    config = current_app.config
    expected = str(config["MAIL_AUTH_SECRET"])
    allow = config_module.parse_networks(str(config["MAIL_AUTH_ALLOW"]))
    if expected and not hmac.compare_digest((secret or "").encode("latin-1", "replace"), expected.encode()):
        return False
    address = _address(remote_addr)
    if allow:
        return address is not None and any(address in network for network in allow)
    return bool(expected) or (address is not None and address.is_loopback)


def answer(request: AuthRequest) -> dict[str, str]:
    """The response headers for one auth_http request."""
    protocol = request.protocol.strip().lower()
    attempt = int(request.attempt) if request.attempt.strip().isdigit() else 1
    if request.method.strip().lower() not in PLAINTEXT_METHODS:
        return failure(UNSUPPORTED_METHOD, protocol, attempt)
    user, password = _decode(request.user), _decode(request.password)
    if user is None or password is None:
        return failure(app_passwords.INVALID, protocol, attempt)
    login = _login(user, password, protocol, request.client_ip)
    if not login.ok:
        throttled = login.reason == "throttled"
        return failure(login.message, protocol, attempt, wait=THROTTLED_WAIT if throttled else AUTH_WAIT)
    backend = backend_for(protocol)
    if backend is None:
        return failure(TEMPORARY, protocol, attempt)
    headers = {"Auth-Status": "OK", "Auth-Server": backend[0], "Auth-Port": str(backend[1])}
    backend_password = str(current_app.config["MAIL_BACKEND_PASSWORD"])
    if backend_password:  # the backend trusts nginx with one master password instead of the user's
        headers["Auth-User"] = login.user.account
        headers["Auth-Pass"] = backend_password
    return headers


# Dovecot's service names (checkpassword's SERVICE) → the protocols of the portal's rule.
DOVECOT_SERVICES = {"imap": "imap", "pop3": "pop3", "smtp": "smtp", "submission": "smtp"}


def check(account: str, password: str, service: str, client_ip: str, lookup: bool = False) -> dict[str, str]:
    """The checkpassword program's question, answered by the same rule as ``answer``: {"result": "ok",
    "user": canonical account} | {"result": "refused", "reason"} | {"result": "unknown"} (a lookup)."""
    if lookup:  # Dovecot's userdb (or a proxy's passdb) lookup: does the account exist, enabled?
        from portal import directory

        user = directory.account_of(account)
        return {"result": "ok", "user": user.account} if user and not user.disabled else {"result": "unknown"}
    service = service.strip().lower()
    login = _login(account, password, DOVECOT_SERVICES.get(service, service), client_ip)
    return {"result": "ok", "user": login.user.account} if login.ok else {"result": "refused", "reason": login.reason}


def _login(account: str, password: str, protocol: str, client_ip: str) -> app_passwords.MailLogin:
    """The rule itself (app_passwords), counted for /metrics."""
    login = app_passwords.authenticate(account, password, protocol, _client_ip(client_ip))
    metrics.mail_auth(protocol, login.ok, login.reason)
    return login


def failure(message: str, protocol: str, attempt: int, wait: int = AUTH_WAIT) -> dict[str, str]:
    """A refusal: the message for the client, a pause, and for SMTP the reply code."""
    headers = {"Auth-Status": message}
    if attempt < MAX_ATTEMPTS:
        headers["Auth-Wait"] = str(wait)
    if protocol == "smtp":
        headers["Auth-Error-Code"] = (
            SMTP_TEMPORARY if message in (TEMPORARY, app_passwords.THROTTLED) else SMTP_AUTH_FAILED
        )
    return headers


def temporary_failure(protocol: str) -> dict[str, str]:
    """What nginx gets when the portal itself failed (e.g. the database is down)."""
    return failure(TEMPORARY, protocol.strip().lower(), 1)


def backend_for(protocol: str) -> tuple[str, int] | None:
    """The (IP address, port) nginx proxies to; host names are resolved, since nginx wants an address."""
    backends = config_module.parse_mail_backends(str(current_app.config["MAIL_BACKENDS"]))
    if protocol not in backends:
        log.error("PORTAL_MAIL_BACKENDS has no %s backend: mail login refused", protocol)
        return None
    host, port = backends[protocol]
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0], port
    except OSError as exc:
        log.error("cannot resolve mail backend %s: %s", host, exc)
        return None


def _decode(value: str) -> str | None:
    """nginx's URL-encoding undone; the header arrives as latin-1 text of the raw bytes."""
    try:
        return unquote_to_bytes(value.encode("latin-1")).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def _client_ip(raw: str) -> str:
    address = _address(raw.strip())
    return str(address) if address else ""


def _address(raw: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A parsed address; IPv4-mapped IPv6 (::ffff:127.0.0.1) as its IPv4 address."""
    try:
        address = ipaddress.ip_address(raw or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
