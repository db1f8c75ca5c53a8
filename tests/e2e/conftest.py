"""End-to-end fixtures: the portal served over HTTP on 127.0.0.1 and Debian's Chromium via Playwright.

e2e always runs on SQLite (its own temporary database), never on the parametrised ``database_url``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from portal import create_app, migrations
from portal.db import db
from portal.services import accounts, policy
from tests.conftest import PASSWORD, make_config, skip_or_fail
from wechat_backend.stub import create_stub_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # every wait in a test is bounded by this

# Reports CSP violations to the test through an exposed binding; it runs before any page script.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__e2eReportCsp(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
    " at " + (e.sourceFile || e.documentURI) + ":" + e.lineNumber);
});
"""


@dataclass
class LiveServer:
    """The portal on a real HTTP socket, plus a way to run services against its database."""

    url: str
    app: object

    def run(self, work: Callable):
        """Call ``work()`` with an app context and database connection (setup and checks)."""
        with self.app.app_context(), db.connection_context():
            return work()

    def create_user(self, account: str, *, totp: bool = True, force: bool = False, name: str = "") -> str:
        """A mail account with PASSWORD; ``totp`` offers 第三方 OTP, ``force`` lists it for forced binding."""

        def work():
            accounts.create(account, PASSWORD, name=name)
            accounts.set_policy(account, methods="totp" if totp else "", force=force)
            if force:
                policy.set_value("force_2fa", "listed")

        self.run(work)
        return account


@contextmanager
def serve_portal(database: Path, host_name: str = "127.0.0.1", **overrides) -> Iterator[LiveServer]:
    """A fresh portal on SQLite, served threaded on 127.0.0.1 at an ephemeral port.

    PUBLIC_URL is the served address, so a QR's ``data-qr-url`` opens on this very server. ``host_name``
    is the name in that URL (``localhost`` keeps the portal's cookies apart from another site's on
    127.0.0.1).
    """
    app = create_app(make_config(f"sqlite:///{database}", **overrides))
    with app.app_context(), db.connection_context():
        migrations.upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://{host_name}:{server.server_port}"
    app.config["PUBLIC_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name="e2e-portal", daemon=True)
    thread.start()
    try:
        yield LiveServer(url, app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        with app.app_context():
            db.close()


@pytest.fixture
def live_server(tmp_path) -> Iterator[LiveServer]:
    with serve_portal(tmp_path / "e2e.db") as server:
        yield server


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium (Debian's package; never a downloaded browser) for the whole run."""
    if not os.path.exists(CHROMIUM):
        skip_or_fail("chromium not installed (apt-get install chromium); e2e tests need /usr/bin/chromium")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """Console errors, uncaught page errors and CSP violations seen during one test."""

    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    expected_statuses: set[tuple[str, int]] = field(default_factory=set)
    offline: bool = False

    def expect_status(self, path: str, status: int) -> None:
        """A test that submits bad input on purpose: Chromium logs the page's 4xx status as an error."""
        self.expected_statuses.add((path, status))

    def expect_offline(self) -> None:
        """A test that takes a browser offline: Chromium logs each request that could not be sent."""
        self.offline = True

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if url.endswith("/favicon.ico"):  # the browser's own probe; the portal serves no favicon
            return
        if self.offline and "ERR_INTERNET_DISCONNECTED" in message.text:
            return
        if any(
            url.endswith(path) and f"status of {status} " in message.text for path, status in self.expected_statuses
        ):
            return
        self.console.append(f"{message.text} ({url})")

    def all(self) -> list[str]:
        return self.console + self.page_errors + self.csp


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def new_page(chromium, live_server, problems):
    """Open a page in a fresh browser context (its own cookies: another browser) watched for problems.

    Every console error, uncaught page error and CSP violation fails the test at teardown.
    """
    contexts = []

    def open_page(**options):
        """``options``: Playwright context options over the defaults (e.g. a phone's viewport and agent)."""
        defaults = {"base_url": live_server.url, "locale": "zh-CN", "viewport": {"width": 1200, "height": 900}}
        context = chromium.new_context(**{**defaults, **options})
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        context.expose_binding("__e2eReportCsp", lambda _source, text: problems.csp.append(text))
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        page.on("console", problems.on_console)
        page.on("pageerror", lambda exc: problems.page_errors.append(str(exc)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems.all(), f"browser console errors / CSP violations: {problems.all()}"


@pytest.fixture
def page(new_page):
    """The test's browser page (a fresh context)."""
    return new_page()


# --- WeChat: the stub of api.weixin.qq.com and a portal with the mini-program simulator ------------

WECHAT_APPID = "wxe2etest0000000001"
WECHAT_SECRET = "e2e-test-stub-secret"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one access-log line per stub call is noise
        pass


@pytest.fixture(scope="session")
def wechat_stub_url() -> Iterator[str]:
    """The local WeChat API stub (wx.login codes, jscode2session) over HTTP on 127.0.0.1."""
    stub = create_stub_app(WECHAT_APPID, WECHAT_SECRET)
    server = make_server("127.0.0.1", 0, stub, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-wechat-stub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def wechat_live_server(tmp_path, wechat_stub_url) -> Iterator[LiveServer]:
    """Like ``live_server``, with DEV_SIMULATORS (/dev/miniprogram) and WeChat calls going to the stub."""
    with serve_portal(
        tmp_path / "e2e-wechat.db",
        DEV_SIMULATORS=True,
        WECHAT_APPID=WECHAT_APPID,
        WECHAT_SECRET=WECHAT_SECRET,
        WECHAT_API_BASE=wechat_stub_url,
    ) as server:
        yield server


# --- 邮箱安全 App: a portal with the App simulator (/dev/app) ------------------------------------


@pytest.fixture
def app_live_server(tmp_path) -> Iterator[LiveServer]:
    """Like ``live_server``, with DEV_SIMULATORS (the App simulator at /dev/app)."""
    with serve_portal(tmp_path / "e2e-app.db", DEV_SIMULATORS=True) as server:
        yield server
