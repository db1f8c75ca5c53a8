"""wechat_backend/openapi.yaml describes exactly the routes and the errors the API has."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from portal.models import Ticket, utcnow
from portal.services import sessions, throttle
from tests.api.support import API, STUB_APPID, browser_session, new_ticket

SPEC_PATH = Path(__file__).resolve().parents[2] / "wechat_backend" / "openapi.yaml"
HTTP_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def documented_operations(spec: dict) -> dict[tuple[str, str], dict]:
    base = spec["servers"][0]["url"].rstrip("/")
    return {
        (method.upper(), base + path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def routed_operations(app) -> set[tuple[str, str]]:
    return {
        (method, re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("wx_api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def documented_error_codes(spec: dict) -> set[str]:
    description = spec["components"]["responses"]["Error"]["description"]
    return set(re.findall(r"[a-z_]+", description.split("Codes:", 1)[1]))


def test_the_document_is_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["servers"][0]["url"] == API


def test_documented_operations_are_exactly_the_routes(app, spec):
    assert set(documented_operations(spec)) == routed_operations(app)


def test_every_error_response_uses_the_envelope(spec):
    for key, operation in documented_operations(spec).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response == {"$ref": "#/components/responses/Error"}, (key, status)


def test_documented_error_statuses_are_the_ones_the_code_returns(
    ctx, app, spec, user, bob, phone, wechat_stub, wx_login
):
    """Drive every error path of every operation; compare with the document, both ways."""
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    codes: set[str] = set()
    operations = documented_operations(spec)

    def record(method: str, template: str, response) -> None:
        body = response.get_json()
        assert response.status_code >= 400, (method, template, response.status_code)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert body["error"]["message"], body
        seen[(method, API + template)].add(response.status_code)
        codes.add(body["error"]["code"])

    def session_call(**kwargs):
        record("POST", "/session", phone.client.post(f"{API}/session", **kwargs))

    for code in ("stub-40029", "stub-40163", "stub-45011", "stub-40226", "stub--1"):
        session_call(json={"code": code})
    session_call(json={})
    session_call(data="x", content_type="text/plain")
    app.config["WECHAT_APPID"] = ""
    session_call(json={"code": "abc"})
    app.config["WECHAT_APPID"] = STUB_APPID

    record("GET", "/accounts", phone.call("GET", "/accounts"))

    owner, stranger = wx_login("o-owner"), wx_login("o-stranger")
    phone.bind(owner, user)

    actions = {
        "preview": ("GET", "/tickets/{ticket}"),
        "confirm": ("POST", "/tickets/{ticket}/confirm"),
        "approve": ("POST", "/tickets/{ticket}/approve"),
        "deny": ("POST", "/tickets/{ticket}/deny"),
    }

    def run(token, purpose, json=None, only=tuple(actions), stage=sessions.FULL, account=user, **options):
        """Each action on a fresh ticket of its own, so that every call meets the state it is meant to."""
        ended, expired, replaces = (options.pop(k, False) for k in ("ended", "expired", "replaces"))
        assert not options, options
        for name in only:
            method, template = actions[name]
            session = browser_session(account, stage)
            new = new_ticket(session, purpose, target="wechat", replaces=replaces)
            if ended:
                sessions.end(session, "logout")
            if expired:
                Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).where(Ticket.id == new.ticket.id).execute()
            body = (json or {"trust_device": False}) if name == "approve" else None
            record(method, template, phone.call(method, template.format(ticket=new.token), token, json=body))

    run(None, "login", stage=sessions.SECOND_FACTOR)  # 401 everywhere
    run(stranger, "login", stage=sessions.SECOND_FACTOR)  # 403 not_bound_to_you
    run(owner, "login", stage=sessions.SECOND_FACTOR, ended=True)  # 409 session_ended
    run(owner, "login", stage=sessions.SECOND_FACTOR, expired=True)  # 410 ticket_expired
    run(owner, "login", stage=sessions.SECOND_FACTOR, only=["confirm"])  # 400 wrong_purpose
    run(owner, "bind", only=["approve"])  # 400 wrong_purpose
    run(owner, "login", json={"trust_device": "yes"}, stage=sessions.SECOND_FACTOR, only=["approve"])  # 400
    run(owner, "login", json=["x"], stage=sessions.SECOND_FACTOR, only=["approve"])  # 400 invalid_json
    run(stranger, "bind", stage=sessions.SECOND_FACTOR, only=["confirm"])  # 403 session_not_full
    run(stranger, "bind", only=["confirm"])  # 409 already_bound
    run(stranger, "bind", replaces=True, only=["confirm"], account=bob)  # 410 grant_expired
    for method, template in actions.values():  # 404 ticket_not_found
        record(method, template, phone.call(method, template.format(ticket="nope"), owner))
    decided = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    assert phone.approve(owner, decided.token).status_code == 200
    for action in ("approve", "deny"):  # 409 ticket_used
        record("POST", f"/tickets/{{ticket}}/{action}", phone.call("POST", f"/tickets/{decided.token}/{action}", owner))
    bound = new_ticket(browser_session(bob), "bind")
    assert phone.confirm(stranger, bound.token).status_code == 200
    record("POST", "/tickets/{ticket}/confirm", phone.confirm(owner, bound.token))
    for _ in range(int(app.config["THROTTLE_ACCOUNT_FAILURES"])):  # alice's second step is locked
        throttle.begin("otp", user.account, "192.0.2.77")
    run(owner, "login", stage=sessions.SECOND_FACTOR, only=["approve"])  # 429 account_locked
    run(owner, "unbind", only=["confirm"])  # 429 account_locked

    for key, operation in operations.items():
        documented = {int(s) for s in operation["responses"] if int(s) >= 400}
        assert seen[key] == documented, (key, sorted(seen[key]), sorted(documented))
    documented_codes = documented_error_codes(spec)
    assert codes == documented_codes, (sorted(codes - documented_codes), sorted(documented_codes - codes))
