"""备用邮箱: codes mailed through a real SMTP server (aiosmtpd), bound to one session, used once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from portal import crypto
from portal.models import AuditEvent, Factor, MailedCode, User, utcnow
from portal.services import accounts, factors, login, sent_codes, sessions, throttle
from portal.services.client import Client
from portal.services.errors import Conflict, InvalidCode, InvalidInput, NotAllowed, NotFound, Throttled, Unavailable
from portal.services.factors import email as backup_email
from tests.unit.conftest import run_threads

BACKUP = "alice.backup@example.org"


@pytest.fixture
def offered(ctx, user, outbox):
    """备用邮箱 enabled for alice (it needs the admin's policy and a way to send mail)."""
    user.extra_methods = accounts.set_policy(user.account, methods="email").extra_methods
    return outbox


def mails(outbox, address: str = BACKUP) -> int:
    return len(outbox.handler.to(address))


def bind(session, user, client, outbox, address: str = BACKUP) -> Factor:
    before = mails(outbox, address)
    factors.send_bind_code(session, user, "email", {"address": address}, client).state
    return factors.bind(session, user, "email", {"code": outbox.code_for(address, after=before)}, client).factor


def age(row: MailedCode, seconds: int) -> None:
    """Pretend the code was mailed ``seconds`` ago."""
    created = utcnow() - timedelta(seconds=seconds)
    MailedCode.update(created_at=created, expires_at=created + backup_email.CHANNEL.ttl).where(
        MailedCode.id == row.id
    ).execute()


# --- offering ---


def test_offered_only_when_enabled_and_mail_can_be_sent(ctx, app, user, smtp_server):
    assert "email" not in factors.offered(user)
    user = accounts.set_policy(user.account, methods="email")
    assert "email" not in factors.offered(user)  # production without PORTAL_SMTP_URL
    app.config["SMTP_URL"] = smtp_server.url
    assert "email" in factors.offered(user)


def test_binding_needs_the_policy(ctx, user, full_session, outbox):
    with pytest.raises(NotAllowed):
        factors.begin_bind(full_session, user, "email", None)


# --- binding ---


def test_the_mailed_code_binds_the_address(offered, user, full_session, client):
    before = mails(offered)
    enrollment = factors.send_bind_code(
        full_session, user, "email", {"address": " Alice.Backup@Example.org "}, client
    ).state
    assert enrollment.sent_to == "a***p@example.org"
    mail = offered.handler.to(BACKUP)[-1].message
    assert mails(offered) == before + 1 and "二次验证验证码" in mail["Subject"]
    assert "10 分钟内有效" in mail.get_content() and client.ip in mail.get_content()

    code = offered.code_for(BACKUP, after=before)
    stored = MailedCode.get()
    assert code not in stored.code_hash and stored.code_hash.count(":") == 1  # a salted HMAC only
    assert crypto.decrypt(stored.address) == BACKUP

    factor = factors.bind(full_session, user, "email", {"code": code}, client).factor
    assert (factor.method, factor.label, crypto.decrypt(factor.secret)) == ("email", "a***p@example.org", BACKUP)
    assert not MailedCode.select().exists()  # used up
    assert AuditEvent.get(AuditEvent.event == "factor_bound").method == "email"


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_wrong_code_binds_nothing_and_counts_a_failure(offered, user, full_session, client):
    before = mails(offered)
    factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    with pytest.raises(InvalidCode):
        factors.bind(
            full_session, user, "email", {"code": other_code(offered.code_for(BACKUP, after=before))}, client
        ).factor
    assert not Factor.select().where(Factor.method == "email").exists()
    assert throttle.failures("otp", user.account) == 1


def test_a_code_works_once_and_only_in_the_session_that_asked(offered, user, full_session, client):
    before = mails(offered)
    factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    code = offered.code_for(BACKUP, after=before)
    other = sessions.resolve(sessions.start(user, sessions.FULL, client))
    with pytest.raises(InvalidCode):
        factors.bind(other, user, "email", {"code": code}, client).factor
    factors.bind(full_session, user, "email", {"code": code}, client).factor
    assert sent_codes.consume(full_session, backup_email.CHANNEL, "bind", code) is None


def test_an_expired_code_is_refused(offered, user, full_session, client):
    before = mails(offered)
    factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    age(MailedCode.get(), int(backup_email.CHANNEL.ttl.total_seconds()) + 1)
    with pytest.raises(InvalidCode):
        factors.bind(full_session, user, "email", {"code": offered.code_for(BACKUP, after=before)}, client).factor


def test_a_new_code_replaces_the_old_one_after_the_pause(offered, user, full_session, client):
    before = mails(offered)
    factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    first = offered.code_for(BACKUP, after=before)
    with pytest.raises(Throttled, match="秒后重新发送"):
        factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    first_row = MailedCode.get()
    age(first_row, int(sent_codes.RESEND_AFTER.total_seconds()))
    factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    second = offered.code_for(BACKUP, after=before + 1)
    assert MailedCode.select().count() == 1 and MailedCode.get().code_hash != first_row.code_hash
    assert (
        first == second or sent_codes.consume(full_session, backup_email.CHANNEL, "bind", first) is None
    )  # the first is gone
    factors.bind(full_session, user, "email", {"code": second}, client).factor


def test_mails_per_window_are_capped(offered, app, user, full_session, client):
    app.config["THROTTLE_ACCOUNT_FAILURES"] = 2
    for _ in range(2):
        factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
        age(MailedCode.get(), 3600)
    with pytest.raises(Throttled):
        factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state


@pytest.mark.parametrize("address", ["", "not an address", "alice@mail.xamd.edu.cn", "a" * 250 + "@x.org"])
def test_bad_addresses_are_refused_before_any_mail(offered, user, full_session, client, address):
    before = len(offered.handler.deliveries)
    with pytest.raises(InvalidInput):
        factors.send_bind_code(full_session, user, "email", {"address": address}, client).state
    assert len(offered.handler.deliveries) == before and not MailedCode.select().exists()


def test_a_dead_smtp_server_is_a_clear_error_and_leaves_no_code(offered, app, user, full_session, client):
    app.config["SMTP_URL"] = "smtp://127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(Unavailable, match="验证码邮件发送失败"):
        factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    assert not MailedCode.select().exists()
    assert not AuditEvent.select().where(AuditEvent.event == "mail_code_sent").exists()


def test_binding_twice_is_a_conflict(offered, user, full_session, client):
    bind(full_session, user, client, offered)
    with pytest.raises(Conflict, match="修改"):
        factors.begin_bind(full_session, user, "email", None)


def test_change_replaces_the_address_only_when_the_new_one_is_confirmed(offered, user, full_session, client):
    bind(full_session, user, client, offered)
    factors.grant_change(full_session, "email")
    assert factors.begin_bind(full_session, user, "email", None).purpose == "rebind"
    factors.send_bind_code(full_session, user, "email", {"address": "new.box@example.org"}, client).state
    assert crypto.decrypt(Factor.get(Factor.method == "email").secret) == BACKUP  # still the old one
    age(MailedCode.get(), 3600)
    before = mails(offered, "new.box@example.org")
    factors.send_bind_code(full_session, user, "email", {"address": "new.box@example.org"}, client).state
    factors.bind(
        full_session, user, "email", {"code": offered.code_for("new.box@example.org", after=before)}, client
    ).factor
    assert crypto.decrypt(Factor.get(Factor.method == "email").secret) == "new.box@example.org"
    assert AuditEvent.get(AuditEvent.event == "factor_changed").method == "email"


# --- a code as the second step (login, 解绑, 修改) ---


def test_login_with_a_mailed_code(offered, user, full_session, client):
    bind(full_session, user, client, offered)
    half = sessions.resolve(sessions.start(user, sessions.SECOND_FACTOR, client))
    before = mails(offered)
    assert factors.send_code(half, user, "email", client) == "a***p@example.org"
    assert factors.METHODS["email"].challenge_context(half, user)["sent_to"] == "a***p@example.org"
    code = offered.code_for(BACKUP, after=before)
    with pytest.raises(InvalidCode):  # the code belongs to the session that asked
        factors.verify(user, "email", code, client, "login", full_session)
    step = login.second_step(half, "email", code, False, client)
    assert step.stage == sessions.FULL
    assert AuditEvent.get(AuditEvent.event == "login_complete").method == "email"


def test_a_verification_code_cannot_bind_and_a_bind_code_cannot_verify(offered, user, full_session, client):
    bind(full_session, user, client, offered)
    before = mails(offered)
    factors.send_code(full_session, user, "email", client)
    verification = offered.code_for(BACKUP, after=before)
    factors.grant_change(full_session, "email")
    with pytest.raises(InvalidCode):
        factors.bind(full_session, user, "email", {"code": verification}, client).factor

    before = mails(offered, "new.box@example.org")
    factors.send_bind_code(full_session, user, "email", {"address": "new.box@example.org"}, client).state
    binding = offered.code_for("new.box@example.org", after=before)
    with pytest.raises(InvalidCode):
        factors.verify(user, "email", binding, client, "unbind", full_session)


def test_without_a_bound_address_nothing_is_mailed(offered, user, full_session, client):
    with pytest.raises(NotFound, match="未绑定"):
        factors.send_code(full_session, user, "email", client)


def test_unbind_by_a_mailed_code(offered, user, full_session, client):
    bind(full_session, user, client, offered)
    before = mails(offered)
    factors.send_code(full_session, user, "email", client)
    factors.unbind(full_session, user, "email", "email", offered.code_for(BACKUP, after=before), client)
    assert not Factor.select().where(Factor.method == "email").exists()


def test_mail_sent_is_audited_with_the_client(offered, user, full_session):
    phone = Client(ip="198.51.100.61", user_agent="Firefox/128")
    factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, phone).state
    event = AuditEvent.get(AuditEvent.event == "mail_code_sent")
    assert (event.ip, event.user_agent, event.method) == (phone.ip, phone.user_agent, "email")
    assert BACKUP not in event.detail and "a***p@example.org" in event.detail


def test_one_code_completes_one_login_even_when_sent_twice_at_once(offered, app, user, full_session, client):
    bind(full_session, user, client, offered)
    half = sessions.resolve(sessions.start(user, sessions.SECOND_FACTOR, client))
    before = mails(offered)
    factors.send_code(half, user, "email", client)
    code = offered.code_for(BACKUP, after=before)

    def submit(_index: int):
        return factors.verify(User.get_by_id(user.id), "email", code, client, "login", half)

    results = run_threads(app, 4, submit)
    outcomes = sorted(kind if kind == "ok" else type(value).__name__ for kind, value in results)
    assert outcomes == ["InvalidCode", "InvalidCode", "InvalidCode", "ok"], results


def test_development_without_smtp_prints_a_readable_mail(ctx, app, user, full_session, client, caplog):
    app.config["ENV"] = "development"  # make run: no PORTAL_SMTP_URL, the code goes to the terminal
    user.extra_methods = accounts.set_policy(user.account, methods="email").extra_methods
    with caplog.at_level("WARNING"):
        factors.send_bind_code(full_session, user, "email", {"address": BACKUP}, client).state
    printed = caplog.text
    assert f"To: {BACKUP}" in printed and "二次验证验证码" in printed
    code = re.search(r"验证码是 (\d{6})", printed).group(1)
    assert factors.bind(full_session, user, "email", {"code": code}, client).factor.method == "email"
