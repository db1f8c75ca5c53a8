"""Helpers for the mini-program API tests: a served WeChat stub, the phone, the browser side."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from portal import crypto
from portal.models import Factor, LoginSession, Ticket, User
from portal.services import sessions, tickets
from portal.services.client import Client
from portal.services.tickets import NewTicket
from tests.helpers import run_threads  # noqa: F401 -- shared with the unit tests
from wechat_backend.stub import create_stub_app

API = "/api/wx/v1"
STUB_APPID = "wxapitest000000001"
STUB_SECRET = "api-test-stub-secret"
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.71 Safari/537.36"
)
BROWSER = Client.of("198.51.100.23", CHROME_ON_WINDOWS)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one access-log line per stub call is noise
        pass


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve a WSGI app over real HTTP on a free 127.0.0.1 port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@dataclass
class Stub:
    """The WeChat API stub served over HTTP."""

    app: Flask
    base: str

    @property
    def stats(self) -> dict[str, int]:
        return self.app.config["STUB_STATS"]

    def counts(self) -> tuple[int, int]:
        return self.stats["token"], self.stats["jscode2session"]

    def login_code(self, openid: str) -> str:
        """What wx.login() gives the mini-program on the phone of ``openid``."""
        response = requests.post(self.base + "stub/login", json={"openid": openid}, timeout=5)
        response.raise_for_status()
        return response.json()["code"]


class Phone:
    """The 邮箱安全助手 mini-program: signs in through the stub, then calls /api/wx/v1."""

    def __init__(self, client, stub: Stub):
        self.client = client
        self.stub = stub

    def sign_in(self, code: str):
        return self.client.post(f"{API}/session", json={"code": code})

    def login(self, openid: str) -> str:
        """wx.login() then POST /session; the bearer token."""
        response = self.sign_in(self.stub.login_code(openid))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["token"]

    def call(self, method: str, path: str, token: str | None = None, json=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(f"{API}{path}", method=method, headers=headers, json=json, **kwargs)

    def accounts(self, token: str) -> list[dict]:
        response = self.call("GET", "/accounts", token)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["accounts"]

    def signed_out(self, token: str) -> bool:
        """The mini-program's token no longer works (it signs in again with wx.login())."""
        response = self.call("GET", "/accounts", token)
        return response.status_code == 401 and error_code(response) == "invalid_token"

    def preview(self, token: str, ticket: str):
        return self.call("GET", f"/tickets/{ticket}", token)

    def confirm(self, token: str, ticket: str):
        return self.call("POST", f"/tickets/{ticket}/confirm", token)

    def approve(self, token: str, ticket: str, trust_device=False):
        return self.call("POST", f"/tickets/{ticket}/approve", token, json={"trust_device": trust_device})

    def deny(self, token: str, ticket: str):
        return self.call("POST", f"/tickets/{ticket}/deny", token)

    def bind(self, token: str, user: User) -> Factor:
        """绑定 微信 for ``user`` from a fresh full browser session, confirmed by this phone."""
        new = new_ticket(browser_session(user), "bind")
        response = self.confirm(token, new.token)
        assert response.status_code == 200, response.get_data(as_text=True)
        return Factor.get((Factor.user == user) & (Factor.method == "wechat"))


def error_code(response) -> str:
    body = response.get_json()
    assert body is not None, response.get_data(as_text=True)
    return body["error"]["code"]


def browser_session(user: User, stage: str = sessions.FULL, client: Client = BROWSER) -> LoginSession:
    """A browser's login session at ``stage`` (password step passed)."""
    return session_of(sessions.start(user, stage, client))


def session_of(cookie_token: str) -> LoginSession:
    return LoginSession.get(token_hash=crypto.token_hash(cookie_token))


def new_ticket(
    session: LoginSession, purpose: str, target: str = "", replaces: bool = False, client: Client = BROWSER
) -> NewTicket:
    """A WeChat QR ticket of this browser session, as the settings or login page would make it."""
    return tickets.create(session, session.user, "wechat", purpose, client, target=target, replaces=replaces)


def fresh(ticket: Ticket) -> Ticket:
    return Ticket.get_by_id(ticket.id)


@pytest.fixture(scope="session")
def wechat_stub() -> Stub:
    """The local WeChat API stub, served over HTTP for the whole run."""
    app = create_stub_app(STUB_APPID, STUB_SECRET)
    with serve(app) as base:
        yield Stub(app, base)
