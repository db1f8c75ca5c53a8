"""The reference 邮箱安全 App (``python -m portal.app_client``) against a live portal over real HTTP.

The server's PUBLIC_URL is its own address, so the QR URLs the web pages show are the URLs the
client uses. The browser is the Flask test client of the same app; the App is the reference client,
both as a class (``AppClient``) and as the command line operators and tests run.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

import portal.app_client as app_client_module
from portal.app_client import AppClient, ClientError
from portal.models import AuditEvent, Device, Factor, Ticket
from tests.api.app_support import LiveServer, closed_port_url
from tests.conftest import PASSWORD
from tests.helpers import attr, text

ROOT = Path(__file__).resolve().parents[2]
VERIFY = "/login/verify"
BIND = "/settings/security/2fa/app/bind"

pytestmark = pytest.mark.usefixtures("fresh_g")


@pytest.fixture
def live_server():
    server = LiveServer()
    with server.running():
        yield server


@pytest.fixture
def app_config(app_config, live_server) -> dict:
    """The portal knows its real address: the QR codes point at the live server."""
    app_config["PUBLIC_URL"] = live_server.url
    return app_config


@pytest.fixture
def live(app, live_server) -> str:
    return live_server.mount(app)


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "app-state.json"


# --- the browser side ---------------------------------------------------------------------------


def qr_and_poll(page) -> tuple[str, str]:
    body = text(page)
    url = attr(page, "data-qr-url")
    poll = body.split('class="scan-status"', 1)[1].split('hx-get="', 1)[1].split('"', 1)[0]
    return url, poll


def open_bind_qr(browser, user) -> tuple[str, str]:
    """alice (no factor yet) logs in and opens 绑定 邮箱安全 App: the bind QR and its poll URL."""
    assert browser.login(user.account, PASSWORD).headers["Location"].endswith("/")
    return qr_and_poll(browser.get(BIND, htmx=True))


def at_second_step(browser, user, query: str = ""):
    browser.post("/logout")
    assert browser.login(user.account, PASSWORD).headers["Location"].endswith(VERIFY)
    return browser.get(VERIFY + query)


def push_poll(page) -> str:
    return page.get_data(as_text=True).split('class="scan-status"', 1)[1].split('hx-get="', 1)[1].split('"', 1)[0]


def logged_in_by(browser, poll: str) -> bool:
    return browser.get(poll, htmx=True).headers.get("HX-Redirect") == "/" and browser.get("/").status_code == 200


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the AppClient class ------------------------------------------------------------------------


def test_enroll_from_the_bind_qr(live, browser, user, state):
    url, poll = open_bind_qr(browser, user)
    assert url.startswith(f"{live}/app/enroll/")

    result = AppClient(state).enroll(url, "Pixel 8", "Android")

    assert result["account"] == user.account
    saved = json.loads(state.read_text())
    assert saved["server"] == live
    assert (saved["device_id"], saved["account"]) == (result["device_id"], user.account)
    assert saved["totp_secret"] == result["totp_secret"] and saved["private_key"]
    assert file_mode(state) == 0o600
    assert "绑定成功" in text(browser.get(poll, htmx=True))
    factor = Factor.get((Factor.user == user) & (Factor.method == "app"))
    assert (factor.label, factor.external_id) == ("Pixel 8 (Android)", result["device_id"])
    assert Device.get(Device.device_id == result["device_id"]).name == "Pixel 8"


def test_the_state_file_is_created_private(live, browser, user, state, monkeypatch):
    """The private key is never in a file others can read, not even before a chmod."""
    url, _ = open_bind_qr(browser, user)
    monkeypatch.setattr(app_client_module.os, "chmod", lambda *args: None)
    old = os.umask(0o022)
    try:
        AppClient(state).enroll(url)
    finally:
        os.umask(old)
    assert file_mode(state) == 0o600


def test_codes_match_rfc_6238(live, browser, user, state):
    url, _ = open_bind_qr(browser, user)
    app = AppClient(state)
    secret = app.enroll(url)["totp_secret"]

    for now in (1_750_000_000.0, 1_750_000_029.0, time.time()):
        code, remaining = app.code(now)
        assert code == pyotp.TOTP(secret).at(now)
        assert remaining == 30 - int(now % 30)

    browser.post("/logout")
    browser.login(user.account, PASSWORD)
    response = browser.post(VERIFY, {"method": "app", "code": app.code()[0]})
    assert response.headers["Location"].endswith("/")


def test_push_approve_with_the_number_logs_the_browser_in(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])
    page = at_second_step(browser, user)
    number = int(attr(page, "data-match-number"))

    (challenge,) = app.pending()
    assert (challenge["purpose"], challenge["account"]) == ("login", user.account)
    assert number in challenge["choices"] and len(set(challenge["choices"])) == 3

    assert app.approve(challenge["id"], number) == {"state": "approved", "purpose": "login"}
    assert logged_in_by(browser, push_poll(page))


def test_approve_without_a_number_asks_for_one(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])
    at_second_step(browser, user)
    (challenge,) = app.pending()

    with pytest.raises(ClientError) as caught:
        app.approve(challenge["id"], None)

    assert "--number" in str(caught.value) and str(challenge["choices"]) in str(caught.value)
    assert Ticket.get_by_id(challenge["id"]).state == "pending"
    with pytest.raises(ClientError, match="no pending challenge"):
        app.approve(challenge["id"] + 1000, None)


def test_a_wrong_number_is_an_error_and_cancels(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])
    page = at_second_step(browser, user)
    number = int(attr(page, "data-match-number"))
    (challenge,) = app.pending()
    wrong = next(n for n in challenge["choices"] if n != number)

    with pytest.raises(ClientError, match="^number_mismatch: "):
        app.approve(challenge["id"], wrong)

    assert Ticket.get_by_id(challenge["id"]).deny_reason == "number_mismatch"
    assert app.pending() == []


def test_deny_is_not_me(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])
    page = at_second_step(browser, user)
    (challenge,) = app.pending()

    assert app.deny(challenge["id"]) == {"state": "denied", "purpose": "login"}

    assert Ticket.get_by_id(challenge["id"]).deny_reason == "not_me"
    assert AuditEvent.get(AuditEvent.event == "app_login_denied").outcome == "not_me"
    redirect = browser.get(push_poll(page), htmx=True).headers["HX-Redirect"]
    told = text(browser.get(redirect))
    assert "该请求已在手机上被拒绝" in told and "修改密码" not in told  # this browser may be the intruder


def test_scan_the_login_qr(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])
    page = at_second_step(browser, user, "?method=app&mode=qr")
    url, poll = qr_and_poll(page)
    assert url.startswith(f"{live}/app/t/")

    assert app.scan(url) == {"state": "approved", "purpose": "login"}
    assert logged_in_by(browser, poll)


def test_remove_unbinds_and_forgets_the_device(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])

    assert app.remove() == {"removed": True}

    assert not state.exists()
    assert Factor.get_or_none((Factor.user == user) & (Factor.method == "app")) is None


def test_requests_of_a_removed_device_are_refused(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])
    Factor.delete().where(Factor.user == user).execute()
    with pytest.raises(ClientError, match="^device_unknown: "):
        app.pending()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda app: app.enroll("http://127.0.0.1:1/app/t/abc"), "not a bind QR"),
        (lambda app: app.scan("http://127.0.0.1:1/wx/t/abc"), "not a login QR"),
        (lambda app: app.pending(), "enroll first"),
        (lambda app: app.code(), "enroll first"),
    ],
)
def test_local_errors(state, call, message):
    with pytest.raises(ClientError, match=message):
        call(AppClient(state))


def test_an_unreachable_server_is_an_error(live, browser, user, state):
    app = AppClient(state)
    app.enroll(open_bind_qr(browser, user)[0])
    app.state["server"] = closed_port_url()

    with pytest.raises(ClientError, match="^server unreachable"):
        app.pending()
    with pytest.raises(ClientError, match="^server unreachable"):
        AppClient(state).enroll(f"{closed_port_url()}/app/enroll/some-ticket")


# --- the command line ---------------------------------------------------------------------------


def cli(state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portal.app_client", "--state", str(state), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cli_enroll_codes_pending_approve(live, browser, user, state):
    url, poll = open_bind_qr(browser, user)

    out = ok(cli(state, "enroll", url, "--name", "CLI phone", "--platform", "Linux"))

    assert out.startswith(f"enrolled {user.account} as device dev_")
    assert file_mode(state) == 0o600
    assert "绑定成功" in text(browser.get(poll, htmx=True))
    assert Factor.get(Factor.user == user).label == "CLI phone (Linux)"

    secret = json.loads(state.read_text())["totp_secret"]
    before = pyotp.TOTP(secret).at(time.time())
    account, code, remaining = ok(cli(state, "codes")).rstrip("\n").split("\t")
    after = pyotp.TOTP(secret).at(time.time())
    assert account == user.account and code in (before, after)
    assert remaining.endswith("s") and 1 <= int(remaining[:-1]) <= 30

    page = at_second_step(browser, user)
    number = int(attr(page, "data-match-number"))
    lines = ok(cli(state, "pending")).splitlines()
    assert len(lines) == 1
    challenge = json.loads(lines[0])
    assert {"id", "purpose", "account", "choices"} <= challenge.keys()
    assert (challenge["purpose"], challenge["account"]) == ("login", user.account)
    assert number in challenge["choices"]

    approved = ok(cli(state, "approve", str(challenge["id"]), "--number", str(number)))

    assert json.loads(approved) == {"state": "approved", "purpose": "login"}
    assert logged_in_by(browser, push_poll(page))


def test_cli_deny_scan_remove(live, browser, user, state):
    ok(cli(state, "enroll", open_bind_qr(browser, user)[0]))

    page = at_second_step(browser, user)
    challenge = json.loads(ok(cli(state, "pending")).splitlines()[0])
    assert json.loads(ok(cli(state, "deny", str(challenge["id"])))) == {"state": "denied", "purpose": "login"}
    assert Ticket.get_by_id(challenge["id"]).deny_reason == "not_me"
    assert "notice=denied" in browser.get(push_poll(page), htmx=True).headers["HX-Redirect"]

    url, poll = qr_and_poll(browser.get(f"{VERIFY}?method=app&mode=qr"))
    assert json.loads(ok(cli(state, "scan", url))) == {"state": "approved", "purpose": "login"}
    assert logged_in_by(browser, poll)

    assert json.loads(ok(cli(state, "remove"))) == {"removed": True}
    assert not state.exists()
    assert Factor.get_or_none(Factor.user == user) is None


def test_cli_wrong_number_is_a_one_line_error(live, browser, user, state):
    ok(cli(state, "enroll", open_bind_qr(browser, user)[0]))
    page = at_second_step(browser, user)
    number = int(attr(page, "data-match-number"))
    challenge = json.loads(ok(cli(state, "pending")).splitlines()[0])
    wrong = next(n for n in challenge["choices"] if n != number)

    line = one_line_error(cli(state, "approve", str(challenge["id"]), "--number", str(wrong)))

    assert line.startswith("error: number_mismatch: ")
    assert Ticket.get_by_id(challenge["id"]).state == "denied"


def test_cli_approve_without_number_lists_the_choices(live, browser, user, state):
    ok(cli(state, "enroll", open_bind_qr(browser, user)[0]))
    at_second_step(browser, user)
    challenge = json.loads(ok(cli(state, "pending")).splitlines()[0])

    line = one_line_error(cli(state, "approve", str(challenge["id"])))

    assert "--number" in line and str(challenge["choices"]) in line
    assert Ticket.get_by_id(challenge["id"]).state == "pending"


def test_cli_unreachable_server_is_a_one_line_error(state):
    line = one_line_error(cli(state, "enroll", f"{closed_port_url()}/app/enroll/some-ticket"))
    assert line.startswith("error: server unreachable")
    assert not state.exists()


def test_cli_refused_enrollment_is_a_one_line_error(live, state):
    line = one_line_error(cli(state, "enroll", f"{live}/app/enroll/no-such-ticket"))
    assert line.startswith("error: ticket_not_found: ")
    assert not state.exists()


@pytest.mark.parametrize("command", [["codes"], ["pending"], ["remove"], ["deny", "1"]])
def test_cli_without_enrollment_is_a_one_line_error(state, command):
    assert "enroll first" in one_line_error(cli(state, *command))


def test_cli_corrupt_state_file_is_a_one_line_error(state):
    state.write_text("{not json")
    assert "state file" in one_line_error(cli(state, "pending"))


def test_cli_usage_errors_exit_2(state):
    assert cli(state, "approve", "not-a-number").returncode == 2
    assert cli(state, "fly").returncode == 2
    assert cli(state, "enroll", "http://x/app/enroll/t", "--algorithm", "rsa").returncode == 2


# --- ECDSA P-256 keys (--algorithm es256) -------------------------------------------------------


def test_enroll_with_a_p256_key_and_sign_every_call(live, browser, user, state):
    app = AppClient(state)
    result = app.enroll(open_bind_qr(browser, user)[0], algorithm="ES256")

    saved = json.loads(state.read_text())
    assert saved["algorithm"] == "ES256"
    device = Device.get(Device.device_id == result["device_id"])
    assert device.algorithm == "ES256" and len(device.public_key) == 88

    page = at_second_step(browser, user)
    (challenge,) = app.pending()
    number = int(attr(page, "data-match-number"))
    assert app.approve(challenge["id"], number) == {"state": "approved", "purpose": "login"}
    assert logged_in_by(browser, push_poll(page))

    url, poll = qr_and_poll(at_second_step(browser, user, "?method=app&mode=qr"))
    assert AppClient(state).scan(url) == {"state": "approved", "purpose": "login"}  # the key read back
    assert logged_in_by(browser, poll)
    assert app.remove() == {"removed": True}


def test_a_state_file_without_an_algorithm_is_ed25519(live, browser, user, state):
    """State files written before ES256 existed keep working."""
    AppClient(state).enroll(open_bind_qr(browser, user)[0])
    saved = json.loads(state.read_text())
    assert saved.pop("algorithm") == "Ed25519"
    state.write_text(json.dumps(saved))
    assert AppClient(state).pending() == []


def test_cli_enroll_es256_deny_scan_remove(live, browser, user, state):
    out = ok(cli(state, "enroll", open_bind_qr(browser, user)[0], "--algorithm", "es256"))
    assert out.startswith(f"enrolled {user.account} as device dev_")
    assert json.loads(state.read_text())["algorithm"] == "ES256"
    assert Device.get().algorithm == "ES256"

    at_second_step(browser, user)
    challenge = json.loads(ok(cli(state, "pending")).splitlines()[0])
    assert json.loads(ok(cli(state, "deny", str(challenge["id"])))) == {"state": "denied", "purpose": "login"}

    url, poll = qr_and_poll(browser.get(f"{VERIFY}?method=app&mode=qr"))
    assert json.loads(ok(cli(state, "scan", url))) == {"state": "approved", "purpose": "login"}
    assert logged_in_by(browser, poll)
    assert json.loads(ok(cli(state, "remove"))) == {"removed": True}
