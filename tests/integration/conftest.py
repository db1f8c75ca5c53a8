"""Integration fixtures: the portal on HTTP, Dovecot (behind nginx, and with checkpassword), nginx's mail
proxy and an aiosmtpd backend, all on free ports of 127.0.0.1 with their files in pytest's tmp dirs.

Missing binaries skip locally and fail in CI (tests.conftest.skip_or_fail). Integration always runs on
SQLite: the checkpassword program, a separate process, opens the same database file.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import pytest

from tests.integration.dovecot import Dovecot, dovecot_version, start_dovecot, write_checkpassword_wrapper
from tests.integration.nginx import Nginx, nginx_version, start_nginx
from tests.integration.portal_server import LivePortal
from tests.integration.procs import HOST, log_tail
from tests.integration.roundcube import php_fpm_version
from tests.smtp_server import SmtpBackend


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report, so that fixtures can print server logs after a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def print_logs_if_failed(request, *logs) -> None:
    """At teardown: a failed test shows the servers' log tails (in "Captured stdout teardown")."""
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        print(log_tail(*logs, lines=60))


def pytest_report_header(config) -> list[str]:
    """Which Dovecot, nginx and php-fpm (Roundcube's) the integration tests run against (visible in CI logs)."""
    lines = []
    for name, probe in (("dovecot", dovecot_version), ("nginx", nginx_version), ("php-fpm8.2", php_fpm_version)):
        binary = shutil.which(name) or f"/usr/sbin/{name}"
        try:
            lines.append(f"integration {name}: {probe(binary)}")
        except Exception as exc:  # a missing or failing binary must not stop the run; the fixtures report it
            lines.append(f"integration {name}: not available ({exc})")
    return lines


@pytest.fixture(scope="module")
def backend_password() -> str:
    """MAIL_BACKEND_PASSWORD: what the portal hands nginx as Auth-Pass, the only password Dovecot (A) takes."""
    return secrets.token_hex(16)


@pytest.fixture(scope="module")
def mail_auth_secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="module")
def backend_dovecot(tmp_path_factory, backend_password) -> Iterator[Dovecot]:
    """Dovecot (A): IMAP/POP3 backend behind nginx (shared by the module's tests: it keeps no state)."""
    server = start_dovecot(tmp_path_factory.mktemp("dovecot-backend"), "backend", master_password=backend_password)
    yield server
    server.stop()


@pytest.fixture
def backend_dovecot_logs(request, backend_dovecot) -> Iterator[None]:
    yield
    print_logs_if_failed(request, backend_dovecot.log)


@pytest.fixture(scope="module")
def smtp_backend() -> Iterator[SmtpBackend]:
    """The SMTP server nginx relays to after a good AUTH; keeps what it receives."""
    server = SmtpBackend().start()
    yield server
    server.stop()


def _serve(portal: LivePortal) -> Iterator[LivePortal]:
    try:
        yield portal
    finally:
        portal.stop()
    # A portal failure must never pass for a refused login.
    assert not portal.requests.server_errors(), f"portal answered 5xx: {portal.requests.server_errors()}"


@pytest.fixture
def portal(tmp_path, mail_auth_secret) -> Iterator[LivePortal]:
    """The portal alone (for Dovecot with checkpassword)."""
    yield from _serve(LivePortal(tmp_path / "portal.db", MAIL_AUTH_SECRET=mail_auth_secret))


@pytest.fixture
def proxied_portal(tmp_path, mail_auth_secret, backend_password, backend_dovecot, smtp_backend) -> Iterator[LivePortal]:
    """The portal whose /mail/auth sends nginx to Dovecot (A) and the aiosmtpd backend."""
    ports = {"imap": backend_dovecot.imap_port, "pop3": backend_dovecot.pop3_port, "smtp": smtp_backend.port}
    backends = ",".join(f"{protocol}={HOST}:{port}" for protocol, port in ports.items())
    portal = LivePortal(
        tmp_path / "portal.db",
        MAIL_AUTH_SECRET=mail_auth_secret,
        MAIL_BACKENDS=backends,
        MAIL_BACKEND_PASSWORD=backend_password,
    )
    yield from _serve(portal)


@pytest.fixture
def mail_proxy(request, tmp_path, proxied_portal, mail_auth_secret, backend_dovecot_logs) -> Iterator[Nginx]:
    """nginx's mail proxy asking the portal's /mail/auth."""
    server = start_nginx(tmp_path / "nginx", portal_port=proxied_portal.port, secret=mail_auth_secret)
    yield server
    server.stop()
    print_logs_if_failed(request, server.error_log)


@pytest.fixture
def checkpassword_dovecot(request, tmp_path, portal) -> Iterator[Dovecot]:
    """Dovecot (B): asks the portal itself, through bin/portal-checkpassword, on the portal's database."""
    wrapper = write_checkpassword_wrapper(tmp_path / "checkpassword.sh", portal.environment())
    server = start_dovecot(tmp_path / "dovecot-checkpassword", "checkpassword", wrapper=wrapper)
    yield server
    server.stop()
    print_logs_if_failed(request, server.log)
