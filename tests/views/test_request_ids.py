"""X-Request-Id on every answer, on the 500 page, and in JSON log lines (PORTAL_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import re

import pytest

from portal import create_app, logs
from portal.config import ConfigError
from portal.models import User
from tests.conftest import PASSWORD


def test_every_answer_has_a_request_id_and_a_sane_incoming_one_is_kept(app):
    first, second = app.test_client().get("/login"), app.test_client().get("/login")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-Id"])
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    kept = app.test_client().get("/login", headers={"X-Request-Id": "nginx-5f2a9c1e"})
    assert kept.headers["X-Request-Id"] == "nginx-5f2a9c1e"
    odd = app.test_client().get("/login", headers={"X-Request-Id": "<script>alert(1)</script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-Id"])


def test_a_500_page_and_its_json_log_line_share_the_id(app, browser, monkeypatch, user, capsys):
    loggers = logs.log_as_json(app)  # what PORTAL_LOG_FORMAT=json does at start
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(User, "by_account", broken)
    response = browser.login(user.account, PASSWORD)
    request_id = response.headers["X-Request-Id"]
    assert response.status_code == 500 and request_id in response.get_data(as_text=True)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    logged = [line for line in lines if line.get("request_id") == request_id]
    assert logged and logged[0]["level"] == "ERROR" and logged[0]["path"] == "/login"
    assert "RuntimeError: a bug" in logged[0]["exception"]
    for logger in loggers:
        logger.handlers.clear()
        logger.propagate = True


def test_an_unknown_log_format_refuses_to_start(app_config):
    with pytest.raises(ConfigError, match="PORTAL_LOG_FORMAT"):
        create_app({**app_config, "LOG_FORMAT": "xml"})
