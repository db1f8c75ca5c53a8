"""Dovecot checkpassword program: IMAP/POP3/SMTP logins checked by the portal's rule (DESIGN §4.12).

Protocol (https://cr.yp.to/checkpwd/interface.html, with Dovecot's extensions): read
``user NUL password NUL timestamp NUL`` from fd 3; on success set ``USER`` and exec the program
named by the arguments (Dovecot's ``checkpassword-reply``); exit 1 when the login is refused, 111
on a temporary failure (e.g. the database is down). ``AUTHORIZED=1`` asks for a lookup without a
password (userdb, or a passdb lookup for a proxy): answer with ``AUTHORIZED=2`` when the account
exists, exit 3 when it does not. Dovecot passes the service in ``SERVICE`` and the client's
address in ``TCPREMOTEIP``.

Settings come from the PORTAL_* environment as for the web app; Dovecot clears the environment, so
set them in a wrapper script, with ``import_environment``, or in a file named by ``PORTAL_ENV_FILE``.
"""

from __future__ import annotations

import ctypes
import os
import sys
import traceback

FAILED, USAGE, UNKNOWN_USER, TEMPORARY = 1, 2, 3, 111
MAX_INPUT = 512  # the interface's limit for the whole request
# Dovecot's service names → the protocols of the portal's rule; submission is SMTP AUTH too.
SERVICES = {"imap": "imap", "pop3": "pop3", "smtp": "smtp", "submission": "smtp"}
M_ARENA_MAX = -8  # glibc's mallopt() parameter (malloc.h)


def main(argv: list[str] | None = None) -> int:
    """Check one login; on success this process becomes the reply program (never returns)."""
    _one_malloc_arena()
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
    lookup = os.environ.get("AUTHORIZED") == "1"
    try:
        user = _lookup(account) if lookup else _authenticate(account, password)
    except Exception:  # the database or the configuration failed: Dovecot says "temporary failure"
        print("portal-checkpassword: internal error", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return TEMPORARY
    if user is None:
        return UNKNOWN_USER if lookup else FAILED
    os.environ["USER"] = user
    if lookup:
        os.environ["AUTHORIZED"] = "2"  # acknowledges the lookup to Dovecot
    sys.stdout.flush()
    try:
        os.execvp(reply[0], reply)  # noqa: S606 -- the reply program Dovecot named, no shell involved
    except OSError as exc:
        print(f"portal-checkpassword: cannot run {reply[0]}: {exc}", file=sys.stderr)
    return TEMPORARY


def _one_malloc_arena() -> None:
    """Keep within Dovecot's address-space cap for its auth process (default_vsz_limit, 256M).

    argon2 checks a hash made with several lanes (PORTAL_ARGON2_PARALLELISM, or an older hash with
    argon2-cffi's four) with as many threads, and glibc gives each thread that allocates its own arena,
    reserving 64 MiB of address space apiece: under the cap the next thread's stack may not fit
    ("Threading failure"). One arena serves one login well and halves the peak.
    """
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


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


def _authenticate(account: str, password: str) -> str | None:
    """The account name for Dovecot if the portal lets this login in, else None."""
    from portal.services import app_passwords

    service = os.environ.get("SERVICE", "").lower()
    protocol = SERVICES.get(service, service)
    login = _in_app(lambda: app_passwords.authenticate(account, password, protocol, _remote_ip()))
    if not login.ok:  # Dovecot writes this to its log next to "Login failed (status=1)"
        print(f"portal-checkpassword: {protocol} login of {account!r} refused: {login.reason}", file=sys.stderr)
    return login.user.account if login.ok else None


def _lookup(account: str) -> str | None:
    """The account name if it exists and is enabled (no password involved)."""
    from portal import directory

    user = _in_app(lambda: directory.account_of(account))
    return user.account if user is not None and not user.disabled else None


def _remote_ip() -> str:
    return os.environ.get("TCPREMOTEIP") or os.environ.get("REMOTE_IP") or ""


def _in_app(work):
    """Run ``work()`` in the portal's app context with a database connection."""
    _load_env_file(os.environ.get("PORTAL_ENV_FILE", ""))
    from portal import create_app
    from portal.db import db

    app = create_app()
    with app.app_context(), db.connection_context():
        return work()


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
