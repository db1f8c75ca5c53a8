"""Invariant 3 under concurrency: threads with their own connections race on one ticket."""

from __future__ import annotations

from portal.models import ApiToken, AuditEvent, CacheEntry, Factor, LoginSession, Ticket, WeChatUser
from portal.services import approvals, sessions, tickets
from tests.api.support import API, BROWSER, browser_session, fresh, new_ticket, run_threads
from tests.helpers import openid_of

THREADS = 8


def post_in_thread(app, path: str, token: str, json=None) -> tuple[int, str]:
    """A request from a worker of its own: its own test client, in the caller's app context."""
    response = app.test_client().post(f"{API}{path}", headers={"Authorization": f"Bearer {token}"}, json=json)
    body = response.get_json()
    return response.status_code, (body.get("error", {}).get("code", "") if body else "")


def statuses(results) -> list[int]:
    assert all(kind == "ok" for kind, _ in results), results
    return sorted(status for _, (status, _code) in results)


def test_concurrent_sign_ins_of_one_wechat_user(app, ctx, wechat_stub):
    """Several workers sign the same phone in at once, with no access token cached yet."""
    codes = [wechat_stub.login_code("o-same") for _ in range(THREADS)]

    def sign_in(i):
        response = app.test_client().post(f"{API}/session", json={"code": codes[i]})
        return response.status_code, (response.get_json() or {}).get("token")

    results = run_threads(app, THREADS, sign_in)

    assert all(kind == "ok" for kind, _ in results), results
    assert [status for _, (status, _token) in results] == [200] * THREADS
    assert len({token for _, (_status, token) in results}) == THREADS
    assert WeChatUser.select().count() == 1
    assert ApiToken.select().count() == THREADS
    assert CacheEntry.select().count() == 1


def test_one_login_ticket_is_approved_once(app, ctx, user, owner):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")

    results = run_threads(
        app,
        THREADS,
        lambda i: post_in_thread(app, f"/tickets/{new.token}/approve", owner, {"trust_device": i % 2 == 0}),
    )

    assert statuses(results) == [200] + [409] * (THREADS - 1)
    assert {code for _, (status, code) in results if status == 409} == {"ticket_used"}
    winner = next(i for i, (_, (status, _code)) in enumerate(results) if status == 200)
    ticket = fresh(new.ticket)
    assert (ticket.state, ticket.trust_device) == ("approved", winner % 2 == 0)
    assert AuditEvent.select().where(AuditEvent.event == "wechat_login_approved").count() == 1


def test_approve_and_deny_race_has_one_winner(app, ctx, user, owner):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    paths = [f"/tickets/{new.token}/approve", f"/tickets/{new.token}/deny"]

    results = run_threads(app, THREADS, lambda i: post_in_thread(app, paths[i % 2], owner))

    assert statuses(results) == [200] + [409] * (THREADS - 1)
    winner = next(i for i, (_, (status, _code)) in enumerate(results) if status == 200)
    assert fresh(new.ticket).state == ("approved" if winner % 2 == 0 else "denied")


def test_one_bind_ticket_binds_one_wechat_user(app, ctx, bob, wx_login):
    phones = [wx_login(f"o-phone-{i}") for i in range(THREADS)]
    new = new_ticket(browser_session(bob), "bind")

    results = run_threads(app, THREADS, lambda i: post_in_thread(app, f"/tickets/{new.token}/confirm", phones[i]))

    assert statuses(results) == [200] + [409] * (THREADS - 1)
    winner = next(i for i, (_, (status, _code)) in enumerate(results) if status == 200)
    (factor,) = Factor.select().where((Factor.user == bob) & (Factor.method == "wechat"))
    assert openid_of(factor) == f"o-phone-{winner}"
    assert fresh(new.ticket).approver == f"o-phone-{winner}"


def test_concurrent_binds_of_one_account_leave_one_factor_and_one_approved_ticket(app, ctx, bob, wx_login):
    """Eight browsers of the same account each show a bind QR; eight phones confirm at once."""
    phones = [wx_login(f"o-phone-{i}") for i in range(THREADS)]
    news = [new_ticket(browser_session(bob), "bind") for _ in range(THREADS)]

    results = run_threads(app, THREADS, lambda i: post_in_thread(app, f"/tickets/{news[i].token}/confirm", phones[i]))

    assert statuses(results) == [200] + [409] * (THREADS - 1)
    assert {code for _, (status, code) in results if status == 409} == {"already_bound"}
    winner = next(i for i, (_, (status, _code)) in enumerate(results) if status == 200)
    (factor,) = Factor.select().where((Factor.user == bob) & (Factor.method == "wechat"))
    assert openid_of(factor) == f"o-phone-{winner}"
    states = [fresh(n.ticket).state for n in news]
    assert states.count("approved") == 1 and states[winner] == "approved"  # the losers were rolled back
    assert set(states) - {"approved"} == {"pending"}


def test_an_approved_ticket_is_consumed_once(app, ctx, user, phone, owner):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    assert phone.approve(owner, new.token).status_code == 200
    ticket_id = new.ticket.id

    results = run_threads(app, THREADS, lambda i: tickets.consume(Ticket.get_by_id(ticket_id)))

    assert all(kind == "ok" for kind, _ in results), results
    assert [value for _, value in results].count(True) == 1
    assert fresh(new.ticket).state == "consumed"


def test_polling_browsers_complete_the_login_once(app, ctx, user, phone, owner):
    session = browser_session(user, sessions.SECOND_FACTOR)
    new = new_ticket(session, "login")
    assert phone.approve(owner, new.token, True).status_code == 200

    def poll(_):
        progress = approvals.progress(LoginSession.get_by_id(session.id), new.ticket.id, BROWSER)
        return progress.state, progress.step

    results = run_threads(app, THREADS, poll)

    assert all(kind == "ok" for kind, _ in results), results
    outcomes = [value for _, value in results]
    assert sorted(state for state, _ in outcomes) == ["consumed"] * (THREADS - 1) + ["done"]
    (step,) = [step for state, step in outcomes if state == "done"]
    assert sessions.resolve(step.token).stage == sessions.FULL
    assert AuditEvent.select().where(AuditEvent.event == "trusted_device_added").count() == 1
