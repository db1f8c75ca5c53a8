"""The portal on a real HTTP socket (werkzeug, threaded) plus the service calls the tests set up with."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pyotp
from werkzeug.serving import make_server

from portal import create_app, crypto, migrations
from portal.db import db
from portal.models import Factor
from portal.services import accounts
from portal.services.client import Client
from tests.conftest import make_config
from tests.integration.procs import HOST

# The tests' own mail client: what the services record as the client of a web action.
WEB_CLIENT = Client.of(HOST, "integration-tests")


def row_value(row, name: str):
    """listing() rows may be models or dicts."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


class RequestLog:
    """WSGI middleware noting each request's path, status and auth_http headers (nginx's calls included)."""

    def __init__(self, app) -> None:
        self.app = app
        self.entries: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        def recording_start_response(status, headers, exc_info=None):
            entry = {
                "path": environ.get("PATH_INFO", ""),
                "status": int(status.split()[0]),
                "protocol": environ.get("HTTP_AUTH_PROTOCOL", ""),
                "user": environ.get("HTTP_AUTH_USER", ""),
                "auth_status": dict(headers).get("Auth-Status", ""),
            }
            with self.lock:
                self.entries.append(entry)
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)

    def mail_auth_calls(self) -> list[dict]:
        with self.lock:
            return [entry for entry in self.entries if entry["path"] == "/mail/auth"]

    def server_errors(self) -> list[dict]:
        with self.lock:
            return [entry for entry in self.entries if entry["status"] >= 500]


class LivePortal:
    """``create_app(make_config(...))`` served on a free loopback port until ``stop()``."""

    def __init__(self, database: Path, **overrides) -> None:
        self.config = make_config(f"sqlite:///{database}", **overrides)
        self.app = create_app(self.config)
        self.run(migrations.upgrade)
        self.requests = RequestLog(self.app)
        self.server = make_server(HOST, 0, self.requests, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://{HOST}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="integration-portal", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        with self.app.app_context():
            db.close()

    def run(self, work: Callable):
        """Call ``work()`` with an app context and a database connection."""
        with self.app.app_context(), db.connection_context():
            return work()

    def environment(self) -> dict[str, str]:
        """What the checkpassword program needs to ask this portal (it is a thin client of /mail/check)."""
        environment = {"PORTAL_CHECK_URL": f"{self.url}/mail/check"}
        if self.config.get("MAIL_AUTH_SECRET"):
            environment["PORTAL_MAIL_AUTH_SECRET"] = str(self.config["MAIL_AUTH_SECRET"])
        return environment

    # --- setup through the services, as the web pages would do it --------------------------------------

    def create_user(self, account: str, password: str) -> str:
        self.run(lambda: accounts.create(account, password, name=account.split("@")[0]))
        return account

    def bind_totp(self, account: str) -> None:
        """第三方 OTP bound directly in the database: from now on only app passwords open mail."""
        self.run(
            lambda: Factor.create(
                user=accounts.get(account), method="totp", secret=crypto.encrypt(pyotp.random_base32())
            )
        )

    def create_app_password(self, account: str, name: str) -> tuple[int, str]:
        """(id, the 16-character plaintext shown once)."""
        from portal.services import app_passwords

        row, plaintext = self.run(lambda: app_passwords.create(accounts.get(account), name, WEB_CLIENT))
        return row.id, plaintext

    def delete_app_password(self, account: str, password_id: int) -> None:
        from portal.services import app_passwords

        self.run(lambda: app_passwords.delete(accounts.get(account), password_id, WEB_CLIENT))

    def app_password_row(self, account: str, password_id: int):
        """The listing() row of one app password (what 使用时间 on 客户端专用密码 is drawn from)."""
        from portal.services import app_passwords

        rows = self.run(lambda: list(app_passwords.listing(accounts.get(account))))
        matches = [row for row in rows if row_value(row, "id") == password_id]
        assert matches, f"app password {password_id} not in listing() of {account}: {rows!r}"
        return matches[0]
