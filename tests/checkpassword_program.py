"""Running the Dovecot checkpassword program as Dovecot runs it (fd 3 in, exec of the reply program out),
against a portal served over real HTTP (``serve``)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from tests.api.support import closed_port_url, serve  # noqa: F401 -- the portal the program asks

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ROOT / "bin" / "portal-checkpassword"
PROGRAM = [sys.executable, "-I", "-S", str(ROOT / "portal" / "checkpassword.py")]  # as bin/ runs it
# Stands in for Dovecot's checkpassword-reply: prints what it was handed and exits 0.
REPLY = [
    sys.executable,
    "-c",
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('USER', 'AUTHORIZED')}))",
]
# Dovecot 2.3 caps its auth process's address space (default_vsz_limit), and so this program's.
DOVECOT_VSZ_LIMIT = 256 * 1024 * 1024


def run(portal_url: str, data: bytes, *, env=None, program=None, reply=REPLY, cwd: Path = ROOT, address_space=None):
    """Run the checkpassword program asking the portal at ``portal_url`` (the base URL), ``data`` on fd 3,
    its address space capped at ``address_space`` bytes."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SERVICE": "imap", "TCPREMOTEIP": "192.0.2.44"}
    environment |= {"PORTAL_CHECK_URL": portal_url.rstrip("/") + "/mail/check"} | (env or {})
    return spawn((program or PROGRAM) + reply, read_end, environment, cwd, address_space)


def spawn(argv: list[str], read_end: int, environment: dict, cwd: Path, address_space: int | None = None):
    """Start ``argv`` with fd 3 = ``read_end`` (as Dovecot arranges it), wait for it, close our end."""
    moved = "" if read_end == 3 else f"3<&{read_end} {read_end}<&-"
    command = ["bash", "-c", f'exec "$@" {moved}', "bash", *argv]  # dash takes single-digit fds only
    cap = (lambda: resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))) if address_space else None
    try:
        return subprocess.run(
            command, pass_fds=(read_end,), env=environment, cwd=cwd, capture_output=True, timeout=60, preexec_fn=cap
        )
    finally:
        os.close(read_end)


def request(account: str, password: str) -> bytes:
    return account.encode() + b"\0" + password.encode() + b"\0" + b"\0"


def replied(process) -> dict:
    assert process.returncode == 0, process.stderr.decode()
    return json.loads(process.stdout)
