"""The mail outbox: rows written by a request (notices), sent after it by ``drain``.

Each process runs one daemon thread (started at its first enqueue, again after a fork), woken when a
row is written and otherwise every POLL_SECONDS; ``flask --app wsgi send-mail`` does the same as a
process of its own. A row is claimed by a conditional UPDATE of its next_attempt_at, so two threads,
workers or hosts never send one row twice. Testing starts no thread: tests call ``drain``.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta

from flask import Flask, current_app, g

from portal.db import db
from portal.models import MailOutbox, utcnow
from portal.services import mailer
from portal.services.errors import Unavailable

BATCH = 50
POLL_SECONDS = 30
LEASE = timedelta(minutes=5)  # a claimed row is due again after this if its sender died mid-way
MAX_BACKOFF = timedelta(hours=1)
GIVE_UP = timedelta(hours=24)


def drain(limit: int = BATCH, now: datetime | None = None) -> int:
    """Send up to ``limit`` due mails; how many were sent."""
    now = now or utcnow()
    due = (
        MailOutbox.select()
        .where(MailOutbox.sent_at.is_null() & (MailOutbox.next_attempt_at <= now))
        .order_by(MailOutbox.next_attempt_at, MailOutbox.id)
        .limit(limit)
    )
    return sum(_send(row, now) for row in list(due) if _claim(row, now))


def _claim(row: MailOutbox, now: datetime) -> bool:
    """Take the row for LEASE: True for exactly one of several racing senders."""
    taken = MailOutbox.update(next_attempt_at=now + LEASE).where(
        (MailOutbox.id == row.id) & (MailOutbox.next_attempt_at == row.next_attempt_at) & MailOutbox.sent_at.is_null()
    )
    return taken.execute() == 1


def _send(row: MailOutbox, now: datetime) -> bool:
    try:
        mailer.send(row.recipient, row.subject, row.body)
    except Unavailable as exc:
        _failed(row, now, repr(exc.__cause__ or exc)[:1000])
        return False
    MailOutbox.update(sent_at=now, last_error="").where(MailOutbox.id == row.id).execute()
    return True


def _failed(row: MailOutbox, now: datetime, error: str) -> None:
    """Back off 1, 2, 4 … minutes (at most an hour); after GIVE_UP, stop (next_attempt_at null)."""
    attempts = row.attempts + 1
    if now - row.created_at >= GIVE_UP:
        later, error = None, f"gave up after {attempts} attempts: {error}"
    else:
        later = now + min(timedelta(minutes=2 ** min(attempts - 1, 10)), MAX_BACKOFF)
    MailOutbox.update(attempts=MailOutbox.attempts + 1, next_attempt_at=later, last_error=error).where(
        MailOutbox.id == row.id
    ).execute()


class Worker:
    """This process's sending thread."""

    def __init__(self, app: Flask) -> None:
        self.app, self.pid = app, os.getpid()
        self.database = db.obj  # the database its app bound (one process may build several apps: tests)
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.passes = threading.Condition()
        self.started = self.finished = 0  # passes begun and ended (wait_idle)
        self.thread = threading.Thread(target=self._run, name="mail-outbox", daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(POLL_SECONDS)
            self.wake.clear()
            if self.stopping.is_set():
                break
            with self.passes:
                self.started += 1
            self.run_once()
            with self.passes:
                self.finished += 1
                self.passes.notify_all()

    def run_once(self) -> int:
        """Drain until nothing is due, in an app context of its own; how many were sent."""
        sent = 0
        if db.obj is not self.database:  # another app has bound the shared proxy since: not ours to drain
            return 0
        with self.app.app_context():
            try:
                while (count := drain()) == BATCH:
                    sent += count
                sent += count
            except Exception:  # a database outage: log it and try again at the next pass
                self.app.logger.exception("mail outbox: pass failed")
            finally:  # the connection closes after each pass
                if not db.is_closed():
                    db.close()
        return sent

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()


_worker: Worker | None = None
_lock = threading.Lock()


def start(app: Flask) -> Worker:
    """This process's worker, started (or started again after a fork) if need be."""
    global _worker
    with _lock:
        if _worker is not None and _worker.alive() and _worker.app is not app:
            _worker.stopping.set()  # another app of this process (tests): one worker, for the newest
            _worker.wake.set()
        if _worker is None or not _worker.alive() or _worker.app is not app:
            _worker = Worker(app)
            _worker.thread.start()
        return _worker


def stop(timeout: float = 10) -> None:
    """End this process's worker (tests)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.stopping.set()
        worker.wake.set()
        worker.thread.join(timeout)


def wait_idle(timeout: float = 10) -> bool:
    """Wake the worker and wait until a pass begun after this call has ended (tests); False if none did."""
    worker = _worker
    if worker is None or not worker.alive():
        return False
    with worker.passes:
        target = worker.started + 1
        worker.wake.set()
        return worker.passes.wait_for(lambda: worker.finished >= target, timeout)


def wake() -> None:
    """A row was written: send it soon, once the writer's transaction has committed."""
    if db.in_transaction():
        g.outbox_written = True  # woken by the teardown below
        return
    _wake_now()


def _wake_now() -> None:
    app = current_app._get_current_object()
    if _worker is not None and _worker.alive() and _worker.app is app:
        _worker.wake.set()
    elif app.config["ENV"] != "testing":
        start(app).wake.set()


def init_app(app: Flask) -> None:
    """Wake the worker after a request (or CLI command) whose transaction wrote to the outbox."""

    def after(_exc=None) -> None:
        if g.pop("outbox_written", False):
            _wake_now()

    app.teardown_request(after)
    app.teardown_appcontext(after)
