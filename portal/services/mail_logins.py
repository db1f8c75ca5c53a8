"""Mail-client logins for 登录记录, counted in memory and written per client and hour, not per login.

A polling IMAP client logs in every minute: one row per (account, protocol, IP, client, outcome, hour)
with its count, first and last time. ``note`` only adds to this process's buffer (bounded: past MAX_KEYS
new keys are dropped and counted in the log, known keys still count); ``flush`` writes the buffer with one
UPSERT per key, from a daemon thread every PORTAL_MAIL_LOGIN_FLUSH_SECONDS and at exit. A flush that fails
(database down) puts its counts back for the next one. Testing starts no thread: tests call ``flush``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app

from portal.db import db
from portal.models import MailLoginCount, User, utcnow

log = logging.getLogger(__name__)

MAX_KEYS = 10_000  # distinct (account, protocol, ip, client, outcome, hour) held between two flushes


@dataclass(frozen=True)
class Key:
    account: str
    user_id: int | None
    protocol: str
    ip: str
    client: str
    outcome: str
    hour: datetime


@dataclass
class Tally:
    count: int
    first_at: datetime
    last_at: datetime


class Buffer:
    """Counts not yet written, shared by the threads of one process."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self.lock = threading.Lock()
        self.tallies: dict[Key, Tally] = {}
        self.dropped = 0

    def add(self, key: Key, now: datetime, count: int = 1) -> None:
        with self.lock:
            tally = self.tallies.get(key)
            if tally is not None:
                tally.count += count
                tally.last_at = max(tally.last_at, now)
            elif len(self.tallies) < self.max_keys:
                self.tallies[key] = Tally(count, now, now)
            else:
                self.dropped += count

    def take(self) -> dict[Key, Tally]:
        with self.lock:
            taken, self.tallies = self.tallies, {}
            return taken

    def put_back(self, taken: dict[Key, Tally]) -> None:
        """Counts a failed flush could not write: merged into what arrived meanwhile (never dropped)."""
        with self.lock:
            for key, old in taken.items():
                tally = self.tallies.get(key)
                if tally is None:
                    self.tallies[key] = old
                else:
                    tally.count += old.count
                    tally.first_at = min(tally.first_at, old.first_at)
                    tally.last_at = max(tally.last_at, old.last_at)

    def __len__(self) -> int:
        return len(self.tallies)


buffer = Buffer()


def note(user: User | None, account: str, protocol: str, ip: str, outcome: str, client: str = "") -> None:
    """Count one IMAP/POP3/SMTP login (or refusal); written at the next flush."""
    now = utcnow()
    key = Key(
        account=(user.account if user else account)[:254],
        user_id=user.id if user else None,
        protocol=(protocol or "")[:8],
        ip=(ip or "")[:64],
        client=(client or "")[:100],
        outcome=(outcome or "")[:24],
        hour=now.replace(minute=0, second=0, microsecond=0),
    )
    buffer.add(key, now)
    _ensure_flusher()


def flush() -> int:
    """Write the buffered counts (one UPSERT per key, one transaction); how many keys were written.

    On a database error the counts go back into the buffer and the error is logged: the next flush
    writes them.
    """
    taken = buffer.take()
    if buffer.dropped:
        log.warning("mail logins: buffer full, %d login(s) not counted", buffer.dropped)
        buffer.dropped = 0
    if not taken:
        return 0
    try:
        with db.atomic():
            for key, tally in taken.items():
                _upsert(key, tally)
    except Exception:
        buffer.put_back(taken)
        log.exception("mail logins: flush failed, %d key(s) kept for the next one", len(taken))
        return 0
    return len(taken)


def _upsert(key: Key, tally: Tally) -> None:
    row = {
        "user": key.user_id,
        "account": key.account,
        "protocol": key.protocol,
        "ip": key.ip,
        "client": key.client,
        "outcome": key.outcome,
        "hour": key.hour,
        "count": tally.count,
        "first_at": tally.first_at,
        "last_at": tally.last_at,
    }
    table = MailLoginCount
    conflict = [table.account, table.protocol, table.ip, table.client, table.outcome, table.hour]
    table.insert(row).on_conflict(
        conflict_target=conflict,
        update={table.count: table.count + tally.count, table.last_at: tally.last_at},
    ).execute()


class Flusher:
    """This process's flushing thread (started at the first login noted, again after a fork)."""

    def __init__(self, app: Flask) -> None:
        self.app, self.pid, self.database = app, os.getpid(), db.obj
        self.seconds = int(app.config.get("MAIL_LOGIN_FLUSH_SECONDS", 60))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mail-login-flush", daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(self.seconds):
            self.run_once()

    def run_once(self) -> int:
        if db.obj is not self.database:  # another app bound the shared proxy since (tests)
            return 0
        with self.app.app_context():
            try:
                return flush()
            finally:
                if not db.is_closed():
                    db.close()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()


_flusher: Flusher | None = None
_lock = threading.Lock()


def _ensure_flusher() -> None:
    global _flusher
    app = current_app._get_current_object()
    if app.config["ENV"] == "testing":
        return
    with _lock:
        if _flusher is None or not _flusher.alive() or _flusher.app is not app:
            if _flusher is not None:
                _flusher.stopping.set()
            _flusher = Flusher(app)
            _flusher.thread.start()


@atexit.register
def _flush_at_exit() -> None:
    """The last counts of a stopping worker (or of a checkpassword process: one login, one flush)."""
    flusher = _flusher
    if flusher is None or not len(buffer) or flusher.pid != os.getpid():
        return
    flusher.stopping.set()
    try:
        flusher.run_once()
    except Exception:  # exiting: nothing more can be done with them
        log.exception("mail logins: flush at exit failed")
