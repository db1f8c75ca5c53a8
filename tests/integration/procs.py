"""Process plumbing for the integration harness: bounded waits, log tails, clean stops."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import skip_or_fail
from tests.helpers import LOOPBACK as HOST

STARTUP_SECONDS = 15.0  # a server that is not answering by then has failed to start
STOP_SECONDS = 5.0


def require_binary(name: str, *fallbacks: str) -> str:
    """The path of a server binary; missing ones skip locally and fail in CI."""
    found = shutil.which(name) or next((path for path in fallbacks if os.access(path, os.X_OK)), None)
    if not found:
        skip_or_fail(f"{name} not installed (apt-get install nginx libnginx-mod-mail dovecot-imapd dovecot-pop3d)")
    return str(found)


def require_file(path: str, package: str) -> str:
    if not Path(path).exists():
        skip_or_fail(f"{path} missing (apt-get install {package})")
    return path


def log_tail(*paths: Path, lines: int = 40) -> str:
    """The last lines of each log, for error messages that say why a server did not come up."""
    parts = []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            text = [f"<unreadable: {exc}>"]
        parts.append(f"--- {path} ---\n" + "\n".join(text))
    return "\n".join(parts)


class Process:
    """A server subprocess in its own process group, its output in a log file, stopped at teardown."""

    def __init__(self, name: str, argv: list[str], log: Path, extra_logs: tuple[Path, ...] = (), env=None):
        self.name = name
        self.argv = argv
        self.log = log
        self.logs = (log, *extra_logs)
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )

    def describe(self) -> str:
        return f"{self.name} ({' '.join(self.argv)})\n{log_tail(*self.logs)}"

    def wait_for_banner(self, port: int, banner: bytes, timeout: float = STARTUP_SECONDS) -> None:
        """Wait until ``port`` accepts a connection and greets with ``banner``; fail with the log tail."""
        self._wait(port, banner, timeout)

    def wait_for_port(self, port: int, timeout: float = STARTUP_SECONDS) -> None:
        """Wait until ``port`` accepts a connection (servers that do not greet, e.g. HTTP)."""
        self._wait(port, None, timeout)

    def _wait(self, port: int, banner: bytes | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.describe()}")
            try:
                with socket.create_connection((HOST, port), timeout=1.0) as sock:
                    if banner is None:
                        return
                    greeting = sock.recv(512)
                if greeting.startswith(banner):
                    return
                last_error = f"unexpected greeting {greeting!r}"
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.1)
        where = f"{HOST}:{port} after {timeout:.0f}s"
        raise RuntimeError(f"{self.name} not ready on {where} ({last_error}): {self.describe()}")

    def stop(self) -> None:
        """SIGTERM the process group we created, then SIGKILL it if it has not gone within STOP_SECONDS."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_SECONDS)
        # Children that outlived their master (e.g. a Dovecot login process) share its group.
        _signal_group(self.popen.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
