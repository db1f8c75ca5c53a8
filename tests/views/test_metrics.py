"""GET /metrics: Prometheus text for allow-listed callers only; logins, mail logins, latency and errors."""

from __future__ import annotations

import re

import pytest

from portal.models import User
from tests.conftest import PASSWORD
from tests.views.test_mail_auth_endpoint import ask


def scrape(app, remote: str = "127.0.0.1"):
    return app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": remote})


def value(app, sample: str) -> float:
    """The value of one sample line (name with labels) in /metrics, 0 when absent."""
    text = scrape(app).get_data(as_text=True)
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_only_allow_listed_callers_may_scrape(app):
    assert scrape(app).status_code == 200
    assert scrape(app, "::ffff:127.0.0.1").status_code == 200
    refused = scrape(app, "203.0.113.9")
    assert refused.status_code == 403 and b"portal_" not in refused.data
    app.config["METRICS_ALLOW"] = "10.0.0.0/8"
    assert scrape(app, "10.1.2.3").status_code == 200 and scrape(app).status_code == 403


def test_the_exposition_is_prometheus_text(app):
    response = scrape(app)
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    for family in ("portal_audit_events_total", "portal_mail_auth_total", "portal_request_seconds"):
        assert f"# TYPE {family.removesuffix('_total')}" in text


def test_logins_are_counted_by_event_and_outcome(app, browser, user):
    wrong = 'portal_audit_events_total{event="login_password",outcome="fail"}'
    done = 'portal_audit_events_total{event="login_complete",outcome="ok"}'
    before_wrong, before_done = value(app, wrong), value(app, done)
    assert browser.login(user.account, "Wrong-horse-1").status_code == 401
    assert browser.login(user.account, PASSWORD).status_code == 302
    assert value(app, wrong) == before_wrong + 1
    assert value(app, done) == before_done + 1


def test_mail_logins_are_counted_by_protocol_and_result(app, user, totp_secret):
    refused = 'portal_mail_auth_total{protocol="imap",result="app_password_required"}'
    before = value(app, refused)
    ask(app, user.account, PASSWORD)
    assert value(app, refused) == before + 1


def test_latency_is_measured_per_endpoint(app):
    count = 'portal_request_seconds_count{endpoint="auth.login_form"}'
    before = value(app, count)
    app.test_client().get("/login")
    app.test_client().get("/no/such/page")
    assert value(app, count) == before + 1
    assert value(app, 'portal_request_seconds_count{endpoint="unmatched"}') >= 1


def test_server_errors_are_counted(app, browser, user, monkeypatch):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error page, not the traceback
    errors = 'portal_http_errors_total{endpoint="auth.login_submit"}'
    before = value(app, errors)

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(User, "by_account", broken)
    assert browser.login(user.account, PASSWORD).status_code == 500
    assert value(app, errors) == before + 1


def test_a_malformed_allow_list_refuses_to_start(app_config):
    from portal import create_app
    from portal.config import ConfigError

    with pytest.raises(ConfigError, match="PORTAL_METRICS_ALLOW"):
        create_app({**app_config, "METRICS_ALLOW": "not-a-network"})
