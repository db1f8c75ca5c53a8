"""Test helpers: a test-client wrapper that behaves like a browser with CSRF tokens."""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyotp
from flask import Flask

from portal.db import db

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
LOOPBACK = "127.0.0.1"  # every server a test starts listens here only


def free_port() -> int:
    """A currently unused high port on 127.0.0.1 (the kernel's ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class Browser:
    """Flask test client that keeps cookies and sends the page's CSRF token like a browser."""

    def __init__(self, client):
        self.client = client
        self.csrf = None

    def get(self, url: str, htmx: bool = False, **headers):
        response = self.client.get(url, headers=self._headers(htmx, headers))
        self._remember_csrf(response)
        return response

    def post(self, url: str, data: dict | None = None, htmx: bool = False, csrf: bool = True, **headers):
        if self.csrf is None and csrf:
            self.get("/login")
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        response = self.client.post(url, data=form, headers=self._headers(htmx, headers))
        self._remember_csrf(response)
        return response

    def login(self, account: str, password: str):
        return self.post("/login", {"account": account, "password": password})

    def cookie(self, name: str):
        cookie = self.client.get_cookie(name)
        return cookie.value if cookie else None

    @staticmethod
    def _headers(htmx: bool, extra: dict) -> dict:
        headers = {"HX-Request": "true"} if htmx else {}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def _remember_csrf(self, response) -> None:
        match = CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self.csrf = match.group(1)


def text(response) -> str:
    return response.get_data(as_text=True)


def attr(response, name: str) -> str:
    """The value of the first ``name="..."`` attribute in a response."""
    match = re.search(rf'{name}="([^"]+)"', text(response))
    assert match, f"{name} not found in response"
    return match.group(1)


def code_for(secret: str, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    import time

    return totp.at(time.time() + 30 * offset_steps)


def run_threads(app: Flask, count: int, work: Callable[[int], object]) -> list[tuple[str, object]]:
    """Run ``work(i)`` in ``count`` threads, each with its own app context and connection.

    The threads are released together; returns ("ok", result) or ("error", exception) per thread.
    """
    barrier = threading.Barrier(count)
    results: list[tuple[str, object] | None] = [None] * count

    def runner(index: int) -> None:
        try:
            with app.app_context(), db.connection_context():
                barrier.wait(timeout=30)
                results[index] = ("ok", work(index))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[index] = ("error", exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def openid_of(factor) -> str:
    """The WeChat openid a 微信 factor rests on (it stores ``appid:openid``)."""
    appid, sep, openid = factor.external_id.partition(":")
    assert sep and appid.startswith("wx"), factor.external_id
    return openid


# Tables a login writes first (its throttle counter); locking them stalls every login and approval.
LOCKED_TABLES = ("throttle_counter", "login_session", "ticket", "audit_event", "cache_entry")


@contextmanager
def database_locked(database_url: str) -> Iterator[None]:
    """Another connection holds the database's write lock (SQLite: BEGIN EXCLUSIVE; PostgreSQL: the
    login tables locked ACCESS EXCLUSIVE) until the block ends, as a long migration or a backup would."""
    if database_url.startswith("sqlite:///"):
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    else:
        import psycopg2

        holder = psycopg2.connect(database_url)
        holder.cursor().execute(f"LOCK TABLE {', '.join(LOCKED_TABLES)} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        holder.rollback()
        holder.close()
