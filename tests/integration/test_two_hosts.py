"""Two portal hosts on one PostgreSQL database are one system (DESIGN §3: all state in the database).

Two gunicorn processes (A and B, each its own port and memory) share only the database and the keys.
A browser binds 微信 on A and the mini-program confirms through B; the browser logs in on A, the phone
approves through B, and A finishes the login; a ticket approved once cannot be approved again on either;
wrong passwords counted on A lock the account on B.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
import requests
from peewee import PostgresqlDatabase

from portal import create_app, migrations
from portal.db import db
from portal.models import ALL_MODELS, Factor
from portal.services import accounts
from tests.api.support import STUB_APPID, STUB_SECRET, wechat_stub  # noqa: F401 -- the stub fixture
from tests.conftest import PASSWORD, make_config, skip_or_fail
from tests.helpers import free_port
from tests.integration.procs import HOST, Process

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "two-hosts@mail.xamd.edu.cn"
OPENID = "o-two-hosts-phone"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
QR_RE = re.compile(r'data-qr-url="[^"]*/wx/t/([A-Za-z0-9_-]+)"')
POLL_RE = re.compile(r'class="scan-status"[^>]*hx-get="([^"]+)"')


@pytest.fixture
def shared_database(tmp_path) -> str:
    url = os.environ.get("PORTAL_TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        skip_or_fail("PORTAL_TEST_DATABASE_URL (PostgreSQL) is needed for two hosts on one database")
    app = create_app(make_config(url))
    with app.app_context(), db.connection_context():
        assert isinstance(db.obj, PostgresqlDatabase)
        db.drop_tables(list(reversed(ALL_MODELS)), safe=True, cascade=True)
        migrations.upgrade()
        accounts.create(ACCOUNT, PASSWORD, name="双机")
    yield url
    with app.app_context(), db.connection_context():
        db.drop_tables(list(reversed(ALL_MODELS)), safe=True, cascade=True)


@pytest.fixture
def hosts(shared_database, wechat_stub, tmp_path):  # noqa: F811
    """Hosts A and B: gunicorn as production runs it, one worker each, the same keys and database."""
    ports = {"A": free_port(), "B": free_port()}
    started = []
    for name, port in ports.items():
        env = {
            "PATH": os.environ["PATH"],
            "PORTAL_ENV": "testing",
            "PORTAL_DATABASE_URL": shared_database,
            "PORTAL_SECRET_KEY": make_config("")["SECRET_KEY"],
            "PORTAL_DATA_KEY": make_config("")["DATA_KEY"],
            "PORTAL_PUBLIC_URL": f"http://{HOST}:{ports['A']}",
            "PORTAL_WECHAT_APPID": STUB_APPID,
            "PORTAL_WECHAT_SECRET": STUB_SECRET,
            "PORTAL_WECHAT_API_BASE": wechat_stub.base,
            "GUNICORN_BIND": f"{HOST}:{port}",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "4",
            "GUNICORN_ACCESS_LOG": "",
        }
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"]
        process = Process(f"portal {name}", gunicorn, tmp_path / f"portal-{name}.log", env=env)
        started.append(process)
    try:
        for process, port in zip(started, ports.values(), strict=True):
            process.wait_for_port(port)
        yield {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    finally:
        for process in started:
            process.stop()


class Browser:
    """A browser talking to one host (its cookies, its CSRF token)."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def get(self, path: str, **headers) -> requests.Response:
        return self.http.get(self.base + path, headers=headers, allow_redirects=False, timeout=10)

    def post(self, path: str, form: dict, csrf_from: str) -> requests.Response:
        token = CSRF_RE.search(self.get(csrf_from).text).group(1)
        return self.http.post(self.base + path, data={**form, "csrf_token": token}, allow_redirects=False, timeout=10)

    def poll(self, path: str, done) -> requests.Response:
        """Poll a QR's status as htmx does (every 0.2 s here) until ``done(response)``; at most 15 s."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            response = self.get(path, **{"HX-Request": "true"})
            assert response.status_code == 200, response.text
            if done(response):
                return response
            time.sleep(0.2)
        raise AssertionError(f"{path} never finished")


class MiniProgram:
    """The 邮箱安全助手 mini-program, talking to one host's /api/wx/v1."""

    def __init__(self, base: str, stub):
        self.api = base + "/api/wx/v1"
        code = stub.login_code(OPENID)
        response = requests.post(self.api + "/session", json={"code": code}, timeout=10)
        assert response.status_code == 200, response.text
        self.headers = {"Authorization": f"Bearer {response.json()['token']}"}

    def post(self, path: str, json=None) -> requests.Response:
        return requests.post(self.api + path, json=json, headers=self.headers, timeout=10)


def ticket_and_poll(html: str) -> tuple[str, str]:
    return QR_RE.search(html).group(1), POLL_RE.search(html).group(1).replace("&amp;", "&")


def test_a_login_started_on_a_is_approved_through_b_and_finished_on_a(hosts, wechat_stub, shared_database):  # noqa: F811
    browser = Browser(hosts["A"])
    assert browser.post("/login", {"account": ACCOUNT, "password": PASSWORD}, "/login").headers["Location"] == "/"
    # 绑定 微信 on A; the phone confirms through B.
    dialog = browser.get("/settings/security/2fa/wechat/bind", **{"HX-Request": "true"})
    ticket, poll = ticket_and_poll(dialog.text)
    phone = MiniProgram(hosts["B"], wechat_stub)
    assert phone.post(f"/tickets/{ticket}/confirm").status_code == 200
    browser.poll(poll, lambda response: "绑定成功" in response.text)
    app = create_app(make_config(shared_database))
    with app.app_context(), db.connection_context():
        assert Factor.select().where(Factor.method == "wechat").count() == 1

    # Log in again on A: the second step's QR, approved (临时登录) through B, finishes on A.
    browser.post("/logout", {}, "/")
    fresh = Browser(hosts["A"])
    assert (
        fresh.post("/login", {"account": ACCOUNT, "password": PASSWORD}, "/login")
        .headers["Location"]
        .endswith("/login/verify")
    )
    ticket, poll = ticket_and_poll(fresh.get("/login/verify?method=wechat&mode=qr").text)
    approved = phone.post(f"/tickets/{ticket}/approve", json={"trust_device": False})
    assert approved.status_code == 200, approved.text
    finished = fresh.poll(poll, lambda response: "HX-Redirect" in response.headers)
    assert finished.headers["HX-Redirect"].endswith("/")
    assert fresh.get("/").status_code == 200 and "您已登录" in fresh.get("/").text

    # Used once: neither host takes the same approval again.
    for host in ("A", "B"):
        again = MiniProgram(hosts[host], wechat_stub).post(f"/tickets/{ticket}/approve", json={"trust_device": True})
        assert again.status_code in (409, 410), (host, again.status_code, again.text)


def test_wrong_passwords_counted_on_a_lock_the_account_on_b(hosts):
    for _ in range(10):  # PORTAL_THROTTLE_ACCOUNT_FAILURES
        wrong = Browser(hosts["A"]).post("/login", {"account": ACCOUNT, "password": "Wrong-horse-1"}, "/login")
        assert wrong.status_code == 401
    locked = Browser(hosts["B"]).post("/login", {"account": ACCOUNT, "password": PASSWORD}, "/login")
    assert locked.status_code == 429 and "尝试次数过多" in locked.text
