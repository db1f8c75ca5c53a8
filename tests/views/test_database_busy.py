"""Invariants 11 and 16: a busy or unreachable database costs a bounded wait and a clear temporary error.

Another connection holds the database's lock (as a migration, a backup or a stuck admin query
would). Every login, page, API call and mail login waits at most PORTAL_DATABASE_TIMEOUT and then
answers "系统繁忙,请稍后再试" (503; JSON 503; nginx a temporary Auth-Status); nothing is half written.
The lock is held until all requests have answered: a request that waited for its release would hang
the test instead.
"""

from __future__ import annotations

import threading
import time

import pytest

from portal import create_app
from portal.models import AuditEvent, LoginSession, ThrottleCounter, Ticket
from tests.api.support import closed_port_url
from tests.conftest import PASSWORD, make_config
from tests.helpers import Browser, attr, database_locked, run_threads, text
from tests.views.support import location

BUSY = "系统繁忙,请稍后再试"
pytestmark = pytest.mark.app_config(DATABASE_TIMEOUT=1)


def login(app, _index: int = 0):
    browser = Browser(app.test_client())
    return browser.login("alice@mail.xamd.edu.cn", PASSWORD)


def test_logins_against_a_locked_database_answer_503_and_write_nothing(app, app_config, user):
    before = AuditEvent.select().count()
    with database_locked(app_config["DATABASE_URL"]):
        results = run_threads(app, 20, lambda index: login(app, index))

    assert [kind for kind, _ in results] == ["ok"] * 20, results
    for _, response in results:
        assert response.status_code == 503 and BUSY in text(response)
        assert "Traceback" not in text(response)
    assert LoginSession.select().count() == 0
    assert sum(row.failures for row in ThrottleCounter.select()) == 0  # no failure counted against anyone
    assert AuditEvent.select().count() == before


def test_a_lock_shorter_than_the_timeout_only_delays(app, app_config, user):
    def release_soon():
        with database_locked(app_config["DATABASE_URL"]):
            started.set()
            threading.Event().wait(0.3)

    started = threading.Event()
    holder = threading.Thread(target=release_soon)
    holder.start()
    started.wait(5)
    response = login(app)
    holder.join()
    assert location(response) == "/" and LoginSession.select().count() == 1


def test_the_json_apis_answer_503_in_their_envelope(app, app_config, user, new_browser):
    from tests.api.app_support import enrolled

    phone = enrolled(app.test_client(), user)
    browser = new_browser()
    browser.login(user.account, PASSWORD)
    page = browser.get("/login/verify")
    (challenge,) = phone.pending()
    with database_locked(app_config["DATABASE_URL"]):
        response = phone.approve(challenge["id"], int(attr(page, "data-match-number")))
    assert response.status_code == 503
    assert response.get_json() == {"error": {"code": "unavailable", "message": BUSY}}
    assert Ticket.get_by_id(challenge["id"]).state == "pending"


def test_mail_logins_get_a_temporary_failure(app, app_config, user):
    headers = {
        "Auth-Method": "plain",
        "Auth-User": user.account,
        "Auth-Pass": PASSWORD,
        "Auth-Protocol": "smtp",
        "Auth-Login-Attempt": "1",
        "Client-IP": "192.0.2.1",
    }
    with database_locked(app_config["DATABASE_URL"]):
        response = app.test_client().get("/mail/auth", headers=headers)
    assert response.headers["Auth-Status"] == "Temporary server problem, try again later"
    assert response.headers["Auth-Error-Code"] == "454 4.7.0" and "Auth-Wait" in response.headers


def test_an_unreachable_database_is_503_too():
    nowhere = closed_port_url().replace("http://", "postgresql://portal@") + "portal"
    browser = Browser(create_app(make_config(nowhere, DATABASE_TIMEOUT=1)).test_client())
    client = browser.client
    assert browser.get("/login").status_code == 200  # the form needs no database
    response = browser.login("alice@mail.xamd.edu.cn", PASSWORD)
    assert response.status_code == 503 and BUSY in text(response)
    api = client.get("/api/wx/v1/accounts", headers={"Authorization": "Bearer some-token"})
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "unavailable"
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["status"] == "error"


def test_a_login_on_its_way_back_to_an_app_gets_503_not_500_when_the_database_is_gone():
    nowhere = closed_port_url().replace("http://", "postgresql://portal@") + "portal"
    client = create_app(make_config(nowhere, DATABASE_TIMEOUT=1)).test_client()
    with client.session_transaction() as session:  # an OIDC authorization sent this browser to /login
        session["continue_to"] = {"to": "/oauth/authorize?client_id=webmail&response_type=code", "at": int(time.time())}
    response = client.get("/login")
    assert response.status_code == 503 and BUSY in text(response)
