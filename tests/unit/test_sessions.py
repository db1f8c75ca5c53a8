"""Server-side login sessions: tokens stored as HMACs, rotation, timeouts, ending (invariant 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal import crypto
from portal.models import LoginSession, User, utcnow
from portal.services import accounts, sessions
from portal.services.client import Client
from portal.services.errors import Conflict
from tests.conftest import PASSWORD
from tests.unit.conftest import run_threads


def _row(token: str) -> LoginSession:
    return LoginSession.get(LoginSession.token_hash == crypto.token_hash(token))


def test_start_stores_only_the_hash_and_resolve_finds_it(user, client):
    token = sessions.start(user, sessions.SECOND_FACTOR, client)
    assert len(token) >= 40
    row = _row(token)
    assert row.token_hash != token and token not in row.token_hash
    assert (row.stage, row.ip, row.user_agent, row.user_id) == (
        sessions.SECOND_FACTOR,
        client.ip,
        client.user_agent,
        user.id,
    )
    session = sessions.resolve(token)
    assert session.id == row.id
    assert session.user.account == user.account


def test_absolute_lifetime_comes_from_config(user, client, app):
    lifetime = timedelta(hours=int(app.config["SESSION_MAX_HOURS"]))
    before = utcnow()
    token = sessions.start(user, sessions.FULL, client)
    after = utcnow()
    assert before + lifetime <= _row(token).expires_at <= after + lifetime


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 129])
def test_resolve_refuses_unknown_tokens(user, client, token):
    sessions.start(user, sessions.FULL, client)
    assert sessions.resolve(token) is None


def test_tokens_are_unique(user, client):
    tokens = {sessions.start(user, sessions.FULL, client) for _ in range(10)}
    assert len(tokens) == 10
    assert all(sessions.resolve(t) for t in tokens)


def test_start_ends_the_previous_session(user, client):
    old = sessions.start(user, sessions.FULL, client)
    new = sessions.start(user, sessions.SECOND_FACTOR, client, previous=sessions.resolve(old))
    assert sessions.resolve(old) is None
    assert _row(old).end_reason == "replaced"
    assert sessions.resolve(new).stage == sessions.SECOND_FACTOR


def test_advance_rotates_the_token(user, client):
    old = sessions.start(user, sessions.SECOND_FACTOR, client)
    session = sessions.resolve(old)
    new = sessions.advance(session, sessions.SECOND_FACTOR, sessions.FULL, "totp")
    assert new != old
    assert sessions.resolve(old) is None
    resolved = sessions.resolve(new)
    assert (resolved.id, resolved.stage) == (session.id, sessions.FULL)
    assert session.stage == sessions.FULL  # the caller's object follows


def test_advance_from_the_wrong_stage_is_a_conflict(user, client):
    token = sessions.start(user, sessions.BINDING, client)
    with pytest.raises(Conflict) as info:
        sessions.advance(sessions.resolve(token), sessions.SECOND_FACTOR, sessions.FULL, "totp")
    assert info.value.code == "session_changed"
    assert sessions.resolve(token).stage == sessions.BINDING


def test_advance_twice_with_a_stale_copy_only_one_wins(user, client):
    token = sessions.start(user, sessions.SECOND_FACTOR, client)
    first, second = sessions.resolve(token), LoginSession.get_by_id(_row(token).id)
    sessions.advance(first, sessions.SECOND_FACTOR, sessions.FULL, "totp")
    with pytest.raises(Conflict):
        sessions.advance(second, sessions.SECOND_FACTOR, sessions.FULL, "totp")


def test_advance_of_an_ended_session_is_a_conflict(user, client):
    token = sessions.start(user, sessions.SECOND_FACTOR, client)
    session = sessions.resolve(token)
    sessions.end(session, "logout")
    with pytest.raises(Conflict):
        sessions.advance(session, sessions.SECOND_FACTOR, sessions.FULL, "totp")


def test_concurrent_advance_only_one_wins(app, user, client):
    token = sessions.start(user, sessions.SECOND_FACTOR, client)
    session_id = _row(token).id

    def advance(_):
        return sessions.advance(LoginSession.get_by_id(session_id), sessions.SECOND_FACTOR, sessions.FULL, "totp")

    results = run_threads(app, 6, advance)
    winners = [value for kind, value in results if kind == "ok"]
    losers = [value for kind, value in results if kind == "error"]
    assert len(winners) == 1, results
    assert all(isinstance(e, Conflict) for e in losers), losers
    assert sessions.resolve(winners[0]).stage == sessions.FULL
    assert sessions.resolve(token) is None


def test_idle_session_expires(user, client, app):
    token = sessions.start(user, sessions.FULL, client)
    idle = timedelta(minutes=int(app.config["SESSION_IDLE_MINUTES"]))
    LoginSession.update(last_seen_at=utcnow() - idle - timedelta(seconds=1)).execute()
    assert sessions.resolve(token) is None
    assert _row(token).end_reason == "expired"
    LoginSession.update(last_seen_at=utcnow()).execute()
    assert sessions.resolve(token) is None, "an expired session stays ended"


def test_recent_activity_keeps_the_session(user, client, app):
    token = sessions.start(user, sessions.FULL, client)
    idle = timedelta(minutes=int(app.config["SESSION_IDLE_MINUTES"]))
    almost_idle = utcnow() - idle + timedelta(minutes=1)
    LoginSession.update(last_seen_at=almost_idle).execute()
    assert sessions.resolve(token) is not None
    assert _row(token).last_seen_at > almost_idle, "resolve restarts the idle clock"
    assert sessions.resolve(token) is not None


def test_absolute_lifetime_ends_even_an_active_session(user, client):
    token = sessions.start(user, sessions.FULL, client)
    LoginSession.update(expires_at=utcnow() - timedelta(seconds=1), last_seen_at=utcnow()).execute()
    assert sessions.resolve(token) is None
    assert _row(token).end_reason == "expired"


def test_end_and_end_all(user, client):
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    mine = [sessions.start(user, sessions.FULL, client) for _ in range(3)]
    theirs = sessions.start(bob, sessions.FULL, client)
    sessions.end(sessions.resolve(mine[0]), "logout")
    assert sessions.resolve(mine[0]) is None
    assert _row(mine[0]).end_reason == "logout"
    assert sessions.end_all(user, "admin") == 2
    assert all(sessions.resolve(t) is None for t in mine)
    assert _row(mine[0]).end_reason == "logout", "an ended session keeps its first reason"
    assert _row(mine[1]).end_reason == "admin"
    assert sessions.resolve(theirs) is not None
    assert sessions.end_all(user, "again") == 0


def test_disabled_user_has_no_session(user, client):
    token = sessions.start(user, sessions.FULL, client)
    User.update(disabled=True).where(User.id == user.id).execute()
    assert sessions.resolve(token) is None
    assert _row(token).end_reason == "disabled"
    User.update(disabled=False).where(User.id == user.id).execute()
    assert sessions.resolve(token) is None


def test_client_fields_are_truncated():
    client = Client.of("1" * 100, "u" * 1000)
    assert (len(client.ip), len(client.user_agent)) == (64, 300)
    assert Client.of(None, None) == Client("", "")


# --- invariant 15: half-logged-in sessions are short-lived ---------------------------------------


def _age(token: str, minutes: int) -> None:
    LoginSession.update(created_at=utcnow() - timedelta(minutes=minutes), last_seen_at=utcnow()).where(
        LoginSession.token_hash == crypto.token_hash(token)
    ).execute()


@pytest.mark.parametrize("stage", [sessions.SECOND_FACTOR, sessions.BINDING])
def test_a_half_logged_in_session_ends_after_ten_minutes(user, client, stage):
    token = sessions.start(user, stage, client)
    _age(token, 9)
    assert sessions.resolve(token) is not None  # kept alive by use, but only so long
    _age(token, 10)
    assert sessions.resolve(token) is None
    assert _row(token).end_reason == "pending_expired"


def test_a_full_session_of_that_age_lives_on(user, client):
    token = sessions.start(user, sessions.FULL, client)
    _age(token, 60)
    assert sessions.resolve(token) is not None


@pytest.mark.config(PENDING_MINUTES=3)
def test_the_pending_lifetime_is_configurable(user, client):
    token = sessions.start(user, sessions.SECOND_FACTOR, client)
    _age(token, 3)
    assert sessions.resolve(token) is None


# --- when the session last proved a second factor (step-up) --------------------------------------


def test_verified_at_is_set_by_the_second_step_not_by_the_password(user, client):
    token = sessions.start(user, sessions.SECOND_FACTOR, client)
    session = sessions.resolve(token)
    assert session.verified_at is None and not sessions.freshly_verified(session)
    sessions.advance(session, sessions.SECOND_FACTOR, sessions.FULL, "totp")
    assert sessions.freshly_verified(session) and _row_by_id(session.id).verified_at is not None


def test_a_trusted_device_login_is_not_verified(user, client):
    session = sessions.resolve(sessions.start(user, sessions.FULL, client))
    assert session.verified_at is None and not sessions.freshly_verified(session)
    sessions.mark_verified(session, "totp")
    assert sessions.freshly_verified(session)


def test_freshness_ends_with_the_step_up_window(user, client, app):
    session = sessions.resolve(sessions.start(user, sessions.FULL, client))
    window = int(app.config["STEP_UP_MINUTES"])
    session.verified_at = utcnow() - timedelta(minutes=window - 1)
    assert sessions.freshly_verified(session)
    session.verified_at = utcnow() - timedelta(minutes=window)
    assert not sessions.freshly_verified(session)


def _row_by_id(session_id: int) -> LoginSession:
    return LoginSession.get_by_id(session_id)


def test_end_all_keeps_the_session_that_made_the_change(user, client):
    keep, other = (sessions.resolve(sessions.start(user, sessions.FULL, client)) for _ in range(2))
    assert sessions.end_all(user, "totp unbound", keep=keep) == 1
    assert _row_by_id(keep.id).ended_at is None and _row_by_id(other.id).end_reason == "totp unbound"
