"""Dovecot checkpassword program: IMAP/POP3/SMTP logins checked by the running portal (DESIGN §4.12).

Protocol (https://cr.yp.to/checkpwd/interface.html, with Dovecot's extensions): read
``user NUL password NUL timestamp NUL`` from fd 3; on success set ``USER`` and exec the program
named by the arguments (Dovecot's ``checkpassword-reply``); exit 1 when the login is refused, 111
on a temporary failure (the portal is down, slow or failed). ``AUTHORIZED=1`` asks for a lookup
without a password (userdb, or a passdb lookup for a proxy): answer with ``AUTHORIZED=2`` when the
account exists, exit 3 when it does not. Dovecot passes the service in ``SERVICE`` and the client's
address in ``TCPREMOTEIP``.

A thin client: it imports nothing of the portal (only the standard library; run it as a file with
``python -S``) and asks ``POST /mail/check`` of the running portal, which applies the same rule as
nginx's ``/mail/auth``. So a login costs one small process and one loopback request, not a start of
the app. Settings: ``PORTAL_CHECK_URL`` (default http://127.0.0.1:8000/mail/check),
``PORTAL_MAIL_AUTH_SECRET`` (sent as ``X-Mail-Auth-Secret``), ``PORTAL_CHECK_TIMEOUT`` (seconds, 5),
from the environment or the file named by ``PORTAL_ENV_FILE`` (Dovecot clears the environment).
"""

from __future__ import annotations

import json
import os
import socket
import sys

FAILED, USAGE, UNKNOWN_USER, TEMPORARY = 1, 2, 3, 111
MAX_INPUT = 512  # the interface's limit for the whole request
DEFAULT_URL = "http://127.0.0.1:8000/mail/check"
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def main(argv: list[str] | None = None) -> int:
    """Check one login; on success this process becomes the reply program (never returns)."""
    reply = list(sys.argv[1:] if argv is None else argv)
    if not reply:
        print("usage: portal-checkpassword REPLY-PROGRAM [ARGS...]  (credentials on fd 3)", file=sys.stderr)
        return USAGE
    try:
        fields = _read_request(3).split(b"\0")
        account, password = fields[0].decode(), (fields[1] if len(fields) > 1 else b"").decode()
    except UnicodeDecodeError:
        return FAILED
    except OSError as exc:
        print(f"portal-checkpassword: cannot read fd 3: {exc}", file=sys.stderr)
        return TEMPORARY
    if os.environ.get("MASTER_USER") or os.environ.get("CREDENTIALS_LOOKUP"):
        return FAILED  # master logins and non-plaintext mechanisms need passwords we do not have
    if not account:
        return FAILED
    lookup = os.environ.get("AUTHORIZED") == "1"
    try:
        decision = _ask(account, password, lookup)
    except (OSError, ValueError) as exc:  # down, slow, refused us, or answered nonsense
        print(f"portal-checkpassword: the portal did not answer: {exc}", file=sys.stderr)
        return TEMPORARY
    if decision.get("result") != "ok":
        if decision.get("result") == "refused":  # Dovecot logs this next to "Login failed (status=1)"
            print(f"portal-checkpassword: login of {account!r} refused: {decision.get('reason')}", file=sys.stderr)
        return UNKNOWN_USER if lookup else FAILED
    os.environ["USER"] = str(decision["user"])
    if lookup:
        os.environ["AUTHORIZED"] = "2"  # acknowledges the lookup to Dovecot
    sys.stdout.flush()
    try:
        os.execvp(reply[0], reply)  # noqa: S606 -- the reply program Dovecot named, no shell involved
    except OSError as exc:
        print(f"portal-checkpassword: cannot run {reply[0]}: {exc}", file=sys.stderr)
    return TEMPORARY


def _ask(account: str, password: str, lookup: bool) -> dict:
    """The portal's decision; raises OSError or ValueError when there is none to be had.

    One HTTP/1.0 request on a plain socket (TLS only for an https URL): http.client would import the
    email package and ssl, doubling the program's start-up time and memory.
    """
    _load_env_file(os.environ.get("PORTAL_ENV_FILE", ""))
    scheme, host, port, path = _split_url(os.environ.get("PORTAL_CHECK_URL") or DEFAULT_URL)
    timeout = float(os.environ.get("PORTAL_CHECK_TIMEOUT") or 5)
    form = {
        "user": account,
        "password": password,
        "service": os.environ.get("SERVICE", ""),
        "ip": os.environ.get("TCPREMOTEIP") or os.environ.get("REMOTE_IP") or "",
        "lookup": "1" if lookup else "",
    }
    body = "&".join(f"{key}={_quote(value)}" for key, value in form.items()).encode("ascii")
    head = [
        f"POST {path} HTTP/1.0",
        f"Host: [{host}]:{port}" if ":" in host else f"Host: {host}:{port}",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
    ]
    secret = os.environ.get("PORTAL_MAIL_AUTH_SECRET", "")
    if secret:
        head.append(f"X-Mail-Auth-Secret: {secret}")
    with socket.create_connection((host, port), timeout=timeout) as connection:
        if scheme == "https":
            import ssl  # only here: a loopback http URL never pays for it

            connection = ssl.create_default_context().wrap_socket(connection, server_hostname=host)
        connection.sendall("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)
        response = _read_all(connection)
    status_line, _, rest = response.partition(b"\r\n")
    _headers, _, data = rest.partition(b"\r\n\r\n")
    parts = status_line.split()
    if len(parts) < 2 or parts[1] != b"200":
        raise ValueError(f"HTTP {parts[1].decode('latin-1') if len(parts) > 1 else '?'}")
    decision = json.loads(data)
    if not isinstance(decision, dict) or (decision.get("result") == "ok" and not isinstance(decision.get("user"), str)):
        raise ValueError("not a decision")
    return decision


def _split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL such as http://127.0.0.1:8000/mail/check."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"PORTAL_CHECK_URL must be an http(s) URL: {url!r}")
    authority, slash, path = rest.partition("/")
    host, colon, port = authority.rpartition(":") if authority.rpartition(":")[2].isdigit() else (authority, "", "")
    host = host.strip("[]")  # an IPv6 literal
    if not host:
        raise ValueError(f"PORTAL_CHECK_URL has no host: {url!r}")
    return scheme, host, int(port) if colon else (443 if scheme == "https" else 80), "/" + path if slash else "/"


def _quote(value: str) -> str:
    """Form encoding of one value (RFC 3986 unreserved characters kept, every other byte %XX)."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in value.encode("utf-8"))


def _read_all(connection: socket.socket, limit: int = 65536) -> bytes:
    """The whole answer (HTTP/1.0: the server closes the connection after it), at most ``limit`` bytes."""
    chunks, size = [], 0
    while size < limit:
        chunk = connection.recv(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_request(fd: int) -> bytes:
    """Everything Dovecot wrote to fd 3 (up to the interface's 512 bytes)."""
    data = b""
    while len(data) <= MAX_INPUT:
        chunk = os.read(fd, MAX_INPUT + 1 - len(data))
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data[:MAX_INPUT]


def _load_env_file(path: str) -> None:
    """PORTAL_* settings from a KEY=VALUE file (e.g. mode 0640, group dovecot); the environment wins."""
    if not path:
        return
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if sep and key.startswith("PORTAL_") and key not in os.environ:
                os.environ[key] = value.strip().strip("'\"")


if __name__ == "__main__":
    sys.exit(main())
