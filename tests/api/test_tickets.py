"""Scanned QR tickets: preview, confirm / approve / deny, and who may decide what (invariant 8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portal import crypto
from portal.models import AuditEvent, Factor, Grant, Ticket, utcnow
from portal.services import factors, otp, sessions, tickets, trust
from tests.api.support import BROWSER, browser_session, error_code, fresh, new_ticket
from tests.helpers import openid_of

DECISIONS = {
    "confirm": lambda phone, token, ticket: phone.confirm(token, ticket),
    "approve": lambda phone, token, ticket: phone.approve(token, ticket, True),
    "deny": lambda phone, token, ticket: phone.deny(token, ticket),
}
ACTIONS = {"preview": lambda phone, token, ticket: phone.preview(token, ticket), **DECISIONS}


def wechat_factors(user) -> list[Factor]:
    return list(Factor.select().where((Factor.user == user) & (Factor.method == "wechat")))


def undecided(ticket: Ticket) -> bool:
    row = fresh(ticket)
    return row.state in ("pending", "scanned") and row.approver == "" and row.decided_at is None


@pytest.fixture
def stranger(ctx, wx_login):
    return wx_login("o-stranger")


# --- preview ---------------------------------------------------------------------------------


def test_preview_of_a_bind_ticket(ctx, user, phone, stranger):
    new = new_ticket(browser_session(user), "bind")
    assert fresh(new.ticket).state == "pending"

    response = phone.preview(stranger, new.token)

    assert response.status_code == 200
    body = response.get_json()
    assert body["purpose"] == "bind"
    assert body["account"] == "a***e@mail.xamd.edu.cn"
    assert body["request"]["ip"] == BROWSER.ip
    assert body["request"]["browser"] == "Chrome 120"
    assert body["request"]["os"] == "Windows"
    shown = datetime.fromisoformat(body["request"]["time"])
    assert shown == new.ticket.created_at.replace(tzinfo=UTC)
    assert 280 <= body["expires_in"] <= 300
    assert body["choices"] == ["confirm", "deny"]
    assert fresh(new.ticket).state == "scanned"
    assert user.account not in response.get_data(as_text=True)


def test_preview_of_a_login_ticket(ctx, user, phone, owner):
    session = browser_session(user, sessions.SECOND_FACTOR)
    new = new_ticket(session, "login")
    body = phone.preview(owner, new.token).get_json()
    assert body["purpose"] == "login"
    assert body["choices"] == ["approve_trust", "approve_once", "deny"]
    assert 100 <= body["expires_in"] <= 120
    assert fresh(new.ticket).state == "scanned"


def test_an_admins_login_ticket_offers_no_trust(ctx, user, phone, owner):
    user.role = "admin"  # admins verify every login: no 确认授权并信任此设备
    user.save()
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    assert phone.preview(owner, new.token).get_json()["choices"] == ["approve_once", "deny"]
    assert phone.approve(owner, new.token, True).status_code == 200  # an old client asking anyway
    assert trust.issue(user, BROWSER, "wechat") is None


@pytest.mark.parametrize("purpose", ["unbind", "rebind"])
def test_preview_of_unbind_and_rebind_tickets(ctx, user, phone, owner, purpose):
    new = new_ticket(browser_session(user), purpose, target="wechat")
    body = phone.preview(owner, new.token).get_json()
    assert (body["purpose"], body["choices"]) == (purpose, ["confirm", "deny"])
    assert fresh(new.ticket).state == "scanned"


def test_previewing_again_keeps_the_ticket_open(ctx, user, phone, owner):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    assert phone.preview(owner, new.token).status_code == 200
    assert phone.preview(owner, new.token).status_code == 200
    assert fresh(new.ticket).state == "scanned"
    assert phone.approve(owner, new.token, False).status_code == 200


@pytest.mark.parametrize(
    ("account", "masked"),
    [
        ("alice@mail.xamd.edu.cn", "a***e@mail.xamd.edu.cn"),
        ("a@mail.xamd.edu.cn", "a***@mail.xamd.edu.cn"),
        ("zhang.san@x.edu.cn", "z***n@x.edu.cn"),
    ],
)
def test_the_account_is_masked(ctx, phone, stranger, account, masked):
    from portal.services import accounts

    person = accounts.create(account, "Correct-horse-9")
    body = phone.preview(stranger, new_ticket(browser_session(person), "bind").token).get_json()
    assert body["account"] == masked


def test_an_unknown_browser_is_described_as_unknown(ctx, user, phone, stranger):
    new = new_ticket(browser_session(user), "bind", client=BROWSER.of("203.0.113.9", "curl/8.0"))
    request = phone.preview(stranger, new.token).get_json()["request"]
    assert (request["ip"], request["browser"], request["os"]) == ("203.0.113.9", "未知浏览器", "未知系统")


# --- unknown, expired, wrong method ------------------------------------------------------------


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("ticket", ["no-such-ticket", "x" * 200, "%00"])
def test_an_unknown_ticket_is_404(ctx, phone, stranger, action, ticket):
    response = ACTIONS[action](phone, stranger, ticket)
    assert (response.status_code, error_code(response)) == (404, "ticket_not_found")


@pytest.mark.parametrize("action", list(ACTIONS))
def test_an_expired_ticket_is_410(ctx, user, phone, owner, action):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    Ticket.update(expires_at=utcnow() - timedelta(seconds=1)).where(Ticket.id == new.ticket.id).execute()
    response = ACTIONS[action](phone, owner, new.token)
    assert (response.status_code, error_code(response)) == (410, "ticket_expired")
    assert fresh(new.ticket).state == "pending"


def test_a_ticket_of_the_app_is_not_a_wechat_ticket(ctx, user, phone, stranger):
    session = browser_session(user)
    new = tickets.create(session, user, "app", "bind", BROWSER)
    for response in (phone.preview(stranger, new.token), phone.confirm(stranger, new.token)):
        assert (response.status_code, error_code(response)) == (404, "ticket_not_found")
    assert undecided(new.ticket)
    assert Factor.select().count() == 0


def test_a_replaced_qr_code_is_dead(ctx, user, phone, stranger):
    """Showing the QR again drops the earlier open ticket of the same browser and purpose."""
    session = browser_session(user)
    first = new_ticket(session, "bind")
    second = new_ticket(session, "bind")
    response = phone.confirm(stranger, first.token)
    assert (response.status_code, error_code(response)) == (404, "ticket_not_found")
    assert phone.confirm(stranger, second.token).status_code == 200


# --- bind --------------------------------------------------------------------------------------


def test_any_wechat_user_may_confirm_a_bind_ticket(ctx, user, phone, stranger):
    new = new_ticket(browser_session(user), "bind")

    response = phone.confirm(stranger, new.token)

    assert response.status_code == 200
    assert response.get_json() == {"state": "approved", "purpose": "bind"}
    (factor,) = wechat_factors(user)
    assert openid_of(factor) == "o-stranger"
    secret = crypto.decrypt(factor.secret)  # a fresh TOTP seed, encrypted at rest
    assert factor.secret != secret and len(secret) == 32
    assert otp.parse_code(otp.code_at(secret, otp.current_step()))
    ticket = fresh(new.ticket)
    assert (ticket.state, ticket.approver) == ("approved", "o-stranger")
    assert ticket.decided_at is not None
    events = [e.event for e in AuditEvent.select().where(AuditEvent.user == user)]
    assert "factor_bound" in events and "wechat_bind_confirmed" in events


def test_bind_in_a_forced_binding_session(ctx, user, phone, stranger):
    new = new_ticket(browser_session(user, sessions.BINDING), "bind")
    assert phone.confirm(stranger, new.token).status_code == 200
    assert len(wechat_factors(user)) == 1


def test_bind_from_a_half_logged_in_session_is_refused(ctx, user, phone, stranger):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "bind")
    response = phone.confirm(stranger, new.token)
    assert (response.status_code, error_code(response)) == (403, "session_not_full")
    assert undecided(new.ticket)
    assert wechat_factors(user) == []


def test_an_account_binds_only_one_wechat_user(ctx, user, phone, owner, stranger):
    (first,) = wechat_factors(user)
    new = new_ticket(browser_session(user), "bind")  # e.g. a second browser that still showed the QR

    for token in (stranger, owner):
        response = phone.confirm(token, new.token)
        assert (response.status_code, error_code(response)) == (409, "already_bound")
        assert undecided(new.ticket)  # nothing half-written: the ticket is not left approved
    (factor,) = wechat_factors(user)
    assert (factor.id, openid_of(factor), factor.secret) == (first.id, "o-owner", first.secret)
    assert AuditEvent.select().where(AuditEvent.event == "wechat_bind_confirmed").count() == 1  # the owner's


def test_one_wechat_user_binds_several_accounts(ctx, user, bob, phone, stranger):
    phone.bind(stranger, user)
    phone.bind(stranger, bob)
    assert [openid_of(f) for f in wechat_factors(user) + wechat_factors(bob)] == ["o-stranger", "o-stranger"]


# --- login -------------------------------------------------------------------------------------


@pytest.mark.parametrize("trust_device", [True, False])
def test_login_approve_records_the_choice(ctx, user, phone, owner, trust_device):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    response = phone.approve(owner, new.token, trust_device)
    assert response.status_code == 200
    assert response.get_json() == {"state": "approved", "purpose": "login"}
    ticket = fresh(new.ticket)
    assert (ticket.state, ticket.trust_device, ticket.approver) == ("approved", trust_device, "o-owner")


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_decisions_are_audited_with_the_phones_address_and_agent(ctx, user, phone, owner, decision):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    phone_agent = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50 miniProgram"
    response = phone.call(
        "POST",
        f"/tickets/{new.token}/{decision}",
        owner,
        json={},
        headers={"User-Agent": phone_agent},
        environ_base={"REMOTE_ADDR": "198.51.100.77"},
    )
    assert response.status_code == 200
    event = AuditEvent.select().where(AuditEvent.event.startswith("wechat_login_")).get()
    assert (event.ip, event.user_agent) == ("198.51.100.77", phone_agent)


def test_login_approve_without_a_body_is_once(ctx, user, phone, owner):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    response = phone.call("POST", f"/tickets/{new.token}/approve", owner)
    assert response.status_code == 200
    assert (fresh(new.ticket).state, fresh(new.ticket).trust_device) == ("approved", False)


@pytest.mark.parametrize("value", ["true", 1, 0, None, [], {}, "yes"])
def test_trust_device_must_be_a_boolean(ctx, user, phone, owner, value):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    response = phone.approve(owner, new.token, value)
    assert (response.status_code, error_code(response)) == (400, "invalid_input")
    assert undecided(new.ticket)


@pytest.mark.parametrize(
    "kwargs", [{"data": "trust_device=true", "content_type": "text/plain"}, {"json": [True]}, {"json": True}]
)
def test_approve_with_a_body_that_is_not_a_json_object_is_400(ctx, user, phone, owner, kwargs):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    response = phone.call("POST", f"/tickets/{new.token}/approve", owner, **kwargs)
    assert (response.status_code, error_code(response)) == (400, "invalid_json")
    assert undecided(new.ticket)


def test_approve_on_a_bind_ticket_is_the_wrong_purpose(ctx, user, phone, stranger):
    new = new_ticket(browser_session(user), "bind")
    response = phone.approve(stranger, new.token, True)
    assert (response.status_code, error_code(response)) == (400, "wrong_purpose")
    assert undecided(new.ticket)
    assert wechat_factors(user) == []


@pytest.mark.parametrize("purpose", ["unbind", "rebind"])
def test_approve_on_unbind_or_rebind_is_the_wrong_purpose(ctx, user, phone, owner, purpose):
    new = new_ticket(browser_session(user), purpose, target="wechat")
    response = phone.approve(owner, new.token, False)
    assert (response.status_code, error_code(response)) == (400, "wrong_purpose")
    assert undecided(new.ticket)


def test_confirm_on_a_login_ticket_is_the_wrong_purpose(ctx, user, phone, owner):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    response = phone.confirm(owner, new.token)
    assert (response.status_code, error_code(response)) == (400, "wrong_purpose")
    assert undecided(new.ticket)


# --- unbind / rebind confirm ---------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["unbind", "rebind"])
def test_confirm_unbind_or_rebind_only_approves_the_ticket(ctx, user, phone, owner, purpose):
    """The browser acts on it when it polls; the factor is untouched until then."""
    (factor,) = wechat_factors(user)
    new = new_ticket(browser_session(user), purpose, target="wechat")
    response = phone.confirm(owner, new.token)
    assert response.get_json() == {"state": "approved", "purpose": purpose}
    assert [f.id for f in wechat_factors(user)] == [factor.id]


# --- deny and deciding twice ---------------------------------------------------------------------


@pytest.mark.parametrize(("purpose", "stage"), [("bind", "full"), ("login", "second_factor"), ("unbind", "full")])
def test_deny(ctx, user, phone, owner, purpose, stage):
    new = new_ticket(browser_session(user, stage), purpose, target="wechat")
    response = phone.deny(owner, new.token)
    assert response.status_code == 200
    assert response.get_json() == {"state": "denied", "purpose": purpose}
    ticket = fresh(new.ticket)
    assert (ticket.state, ticket.approver, ticket.trust_device) == ("denied", "o-owner", False)
    assert AuditEvent.select().where(AuditEvent.event == f"wechat_{purpose}_denied").count() == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [("approve", "approve"), ("approve", "deny"), ("deny", "approve"), ("deny", "deny"), ("approve_once", "approve")],
)
def test_a_login_ticket_is_decided_once(ctx, user, phone, owner, first, second):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    decide = {**DECISIONS, "approve_once": lambda p, t, k: p.approve(t, k, False)}
    assert decide[first](phone, owner, new.token).status_code == 200
    state, trust_device = fresh(new.ticket).state, fresh(new.ticket).trust_device
    response = decide[second](phone, owner, new.token)
    assert (response.status_code, error_code(response)) == (409, "ticket_used")
    assert (fresh(new.ticket).state, fresh(new.ticket).trust_device) == (state, trust_device)


@pytest.mark.parametrize("second", ["confirm", "deny"])
def test_a_bind_ticket_is_decided_once(ctx, user, bob, phone, stranger, owner, second):
    new = new_ticket(browser_session(bob), "bind")
    assert phone.confirm(stranger, new.token).status_code == 200
    response = DECISIONS[second](phone, owner, new.token)
    assert (response.status_code, error_code(response)) == (409, "ticket_used")
    assert [openid_of(f) for f in wechat_factors(bob)] == ["o-stranger"]
    assert fresh(new.ticket).approver == "o-stranger"


def test_a_consumed_ticket_cannot_be_decided(ctx, user, phone, owner):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    assert phone.approve(owner, new.token).status_code == 200
    assert tickets.consume(fresh(new.ticket))
    response = phone.deny(owner, new.token)
    assert (response.status_code, error_code(response)) == (409, "ticket_used")
    assert fresh(new.ticket).state == "consumed"


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["login", "unbind", "rebind"])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_only_the_bound_wechat_user_may_see_or_decide(ctx, user, bob, phone, owner, wx_login, purpose, action):
    other = wx_login("o-bob")
    phone.bind(other, bob)  # bound to another account: still not alice's
    stage = sessions.SECOND_FACTOR if purpose == "login" else sessions.FULL
    new = new_ticket(browser_session(user, stage), purpose, target="wechat")

    response = ACTIONS[action](phone, other, new.token)

    assert (response.status_code, error_code(response)) == (403, "not_bound_to_you")
    ticket = fresh(new.ticket)
    assert (ticket.state, ticket.approver) == ("pending", "")  # not even marked scanned
    assert [openid_of(f) for f in wechat_factors(user)] == ["o-owner"]


def test_a_login_ticket_of_an_account_without_wechat_is_nobodys(ctx, user, phone, stranger):
    new = new_ticket(browser_session(user, sessions.SECOND_FACTOR), "login")
    response = phone.approve(stranger, new.token, True)
    assert (response.status_code, error_code(response)) == (403, "not_bound_to_you")
    assert undecided(new.ticket)


@pytest.mark.parametrize(("purpose", "stage"), [("bind", "full"), ("login", "second_factor"), ("rebind", "full")])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_a_ticket_of_an_ended_browser_session_is_dead(ctx, user, phone, owner, purpose, stage, action):
    session = browser_session(user, stage)
    new = new_ticket(session, purpose, target="wechat")
    sessions.end(session, "logout")
    response = ACTIONS[action](phone, owner, new.token)
    assert (response.status_code, error_code(response)) == (409, "session_ended")
    assert undecided(new.ticket)
    assert [openid_of(f) for f in wechat_factors(user)] == ["o-owner"]


# --- 修改: the bind ticket that replaces the old WeChat user --------------------------------------


def test_rebind_replaces_the_old_factor_only_on_confirm(ctx, user, phone, owner, wx_login):
    (old,) = wechat_factors(user)
    device = trust.issue(user, BROWSER, "wechat")
    session = browser_session(user)
    factors.grant_change(session, "wechat")
    new = new_ticket(session, "bind", replaces=True)
    newcomer = wx_login("o-new-phone")

    assert phone.preview(newcomer, new.token).status_code == 200
    assert [f.id for f in wechat_factors(user)] == [old.id]  # an abandoned 修改 keeps the old one
    assert [r["account"] for r in phone.accounts(owner)] == [user.account]

    response = phone.confirm(newcomer, new.token)

    assert response.get_json() == {"state": "approved", "purpose": "bind"}
    (factor,) = wechat_factors(user)
    assert openid_of(factor) == "o-new-phone"
    assert crypto.decrypt(factor.secret) != crypto.decrypt(old.secret)
    assert phone.signed_out(owner)  # its token rested on the removed factor
    assert [r["account"] for r in phone.accounts(newcomer)] == [user.account]
    assert not trust.is_trusted(device, user)  # trusted devices go with the old factor
    assert Grant.get(Grant.session == session).used_at is not None
    assert AuditEvent.select().where(AuditEvent.event == "factor_changed").count() == 1


def test_rebind_without_a_grant_is_410(ctx, user, phone, owner, wx_login):
    (old,) = wechat_factors(user)
    new = new_ticket(browser_session(user), "bind", replaces=True)
    response = phone.confirm(wx_login("o-new-phone"), new.token)
    assert (response.status_code, error_code(response)) == (410, "grant_expired")
    assert undecided(new.ticket)
    assert [(f.id, openid_of(f)) for f in wechat_factors(user)] == [(old.id, "o-owner")]


def test_rebind_with_an_expired_or_spent_grant_is_410(ctx, user, phone, owner, wx_login):
    session = browser_session(user)
    factors.grant_change(session, "wechat")
    Grant.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    newcomer = wx_login("o-new-phone")
    new = new_ticket(session, "bind", replaces=True)
    assert error_code(phone.confirm(newcomer, new.token)) == "grant_expired"

    factors.grant_change(session, "wechat")
    assert phone.confirm(newcomer, new_ticket(session, "bind", replaces=True).token).status_code == 200
    again = new_ticket(session, "bind", replaces=True)  # the grant was spent by the first 修改
    response = phone.confirm(wx_login("o-owner"), again.token)
    assert (response.status_code, error_code(response)) == (410, "grant_expired")
    assert [openid_of(f) for f in wechat_factors(user)] == ["o-new-phone"]


def test_a_grant_of_another_session_does_not_count(ctx, user, phone, owner, wx_login):
    factors.grant_change(browser_session(user), "wechat")
    new = new_ticket(browser_session(user), "bind", replaces=True)
    response = phone.confirm(wx_login("o-new-phone"), new.token)
    assert (response.status_code, error_code(response)) == (410, "grant_expired")
    assert [openid_of(f) for f in wechat_factors(user)] == ["o-owner"]
