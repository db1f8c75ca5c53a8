"""Bearer tokens: every endpoint but /session needs a live one; 401 invalid_token otherwise."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.models import ApiToken, utcnow
from tests.api.support import browser_session, error_code, fresh, new_ticket

# (method, path, json) of every authenticated endpoint; {t} is a real, open ticket.
ENDPOINTS = [
    ("GET", "/accounts", None),
    ("GET", "/tickets/{t}", None),
    ("POST", "/tickets/{t}/confirm", None),
    ("POST", "/tickets/{t}/approve", {"trust_device": True}),
    ("POST", "/tickets/{t}/deny", None),
]


@pytest.fixture
def bind_ticket(ctx, user):
    return new_ticket(browser_session(user), "bind")


def _bad_headers(kind: str, wx_login) -> dict:
    if kind == "missing":
        return {}
    if kind == "expired":
        token = wx_login("o-alice")
        ApiToken.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
        return {"Authorization": f"Bearer {token}"}
    if kind == "wrong-scheme":
        return {"Authorization": f"Token {wx_login('o-alice')}"}
    if kind == "no-scheme":
        return {"Authorization": wx_login("o-alice")}
    if kind == "hash-as-token":  # what a leaked database row would give
        wx_login("o-alice")
        return {"Authorization": f"Bearer {ApiToken.get().token_hash}"}
    return {
        "empty": {"Authorization": "Bearer "},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "overlong": {"Authorization": "Bearer " + "a" * 5000},
        "basic": {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
    }[kind]


def assert_refused(phone, headers, ticket, method="GET", path="/accounts", json=None) -> None:
    response = phone.call(method, path.format(t=ticket.token), json=json, headers=headers)
    assert (response.status_code, error_code(response)) == (401, "invalid_token")
    row = fresh(ticket.ticket)
    assert (row.state, row.approver) == ("pending", "")


@pytest.mark.parametrize(("method", "path", "json"), ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "garbage", "expired"])
def test_without_a_live_token_every_endpoint_is_401(phone, wx_login, bind_ticket, method, path, json, kind):
    assert_refused(phone, _bad_headers(kind, wx_login), bind_ticket, method, path, json)


@pytest.mark.parametrize(
    "kind", ["empty", "overlong", "basic", "wrong-scheme", "no-scheme", "hash-as-token", "missing", "expired"]
)
def test_malformed_authorization_headers_are_401(phone, wx_login, bind_ticket, kind):
    headers = _bad_headers(kind, wx_login)
    assert_refused(phone, headers, bind_ticket)
    assert_refused(phone, headers, bind_ticket, "POST", "/tickets/{t}/confirm")


@pytest.mark.parametrize("json", [{"trust_device": "yes"}, ["x"]])
def test_authentication_comes_before_input_checks(phone, bind_ticket, json):
    response = phone.call("POST", f"/tickets/{bind_ticket.token}/approve", json=json)
    assert (response.status_code, error_code(response)) == (401, "invalid_token")


def test_a_live_token_is_accepted_until_it_expires(ctx, phone, wx_login):
    token = wx_login("o-alice")
    assert phone.call("GET", "/accounts", token).status_code == 200
    ApiToken.update(expires_at=utcnow() + timedelta(seconds=30)).execute()
    assert phone.call("GET", "/accounts", token).status_code == 200
    ApiToken.update(expires_at=utcnow()).execute()
    response = phone.call("GET", "/accounts", token)
    assert (response.status_code, error_code(response)) == (401, "invalid_token")


def test_one_users_token_does_not_expire_anothers(ctx, phone, wx_login):
    alice, bob = wx_login("o-alice"), wx_login("o-bob")
    ApiToken.update(expires_at=utcnow() - timedelta(seconds=1)).where(ApiToken.id == 1).execute()
    assert phone.call("GET", "/accounts", alice).status_code == 401
    assert phone.call("GET", "/accounts", bob).status_code == 200
