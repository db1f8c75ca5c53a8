"""短信 as a factor: bind a number by a texted code (through the Aliyun stub, which checks signatures),
log in with one, the per-number caps, and a provider failure that changes nothing."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent, Factor, MailedCode, ThrottleCounter
from portal.services import accounts, factors, login, sessions, throttle
from portal.services.errors import InvalidCode, InvalidInput, NotAllowed, Throttled, Unavailable
from portal.services.factors import sms

PHONE = "+8613800138000"


@pytest.fixture
def texting(app, ctx, user, sms_stub):
    """短信 enabled for alice, texts going to the loopback Aliyun stub."""
    app.config.update(sms_stub.config("aliyun"))
    user.extra_methods = accounts.set_policy(user.account, methods="sms").extra_methods
    return sms_stub


def bind(session, user, client, stub, raw_phone: str = "138 0013 8000"):
    before = len(stub.codes(PHONE))
    enrollment = factors.send_bind_code(session, user, "sms", {"address": raw_phone}, client).state
    assert enrollment.sent_to == "138****8000"
    code = stub.wait_for_code(PHONE, after=before)
    return factors.bind(session, user, "sms", {"code": code}, client).factor


def next_minute() -> None:
    """As if a minute had passed for the number's cap of one text a minute."""
    ThrottleCounter.delete().where(ThrottleCounter.scope == "smsnumber:60").execute()


def age_sent_codes(seconds: int) -> None:
    from datetime import timedelta

    for row in MailedCode.select():
        MailedCode.update(created_at=row.created_at - timedelta(seconds=seconds)).where(
            MailedCode.id == row.id
        ).execute()


def test_the_texted_code_binds_the_number_stored_encrypted(texting, user, full_session, client):
    factor = bind(full_session, user, client, texting)
    assert (factor.method, factor.label) == ("sms", "138****8000")
    assert PHONE not in factor.secret and sms.Sms().bound_address(user) == PHONE
    sent = texting.messages[-1]
    assert (sent.template, sent.params) == (texting.config("aliyun")["SMS_TEMPLATE"], {"code": sent.code})
    assert not MailedCode.select().exists()  # used up


def test_not_offered_without_policy_or_provider(app, ctx, user, full_session, client, sms_stub):
    app.config.update(sms_stub.config("aliyun"))
    with pytest.raises(NotAllowed):
        factors.begin_bind(full_session, user, "sms", client)
    accounts.set_policy(user.account, methods="sms")
    app.config["SMS_PROVIDER"] = ""
    assert "sms" not in factors.offered(user)
    row = next(row for row in factors.overview(user) if row.method.key == "sms")
    assert row.unavailable == "本站未配置短信服务"


@pytest.mark.parametrize("raw", ["12345", "010 6275 1234", "+86 138 0013 800０", "abc"])
def test_bad_numbers_are_refused_before_any_text(texting, user, full_session, client, raw):
    with pytest.raises(InvalidInput):
        factors.send_bind_code(full_session, user, "sms", {"address": raw}, client)
    assert texting.messages == []


def test_a_provider_error_is_reported_and_changes_nothing(texting, user, full_session, client):
    texting.fail()
    with pytest.raises(Unavailable, match="短信发送失败"):
        factors.send_bind_code(full_session, user, "sms", {"address": PHONE}, client)
    assert not MailedCode.select().exists() and not Factor.select().exists()


def test_login_with_a_texted_code_once(texting, user, full_session, client):
    bind(full_session, user, client, texting)
    next_minute()
    half = sessions.resolve(sessions.start(user, sessions.SECOND_FACTOR, client))
    before = len(texting.codes(PHONE))
    assert factors.send_code(half, user, "sms", client) == "138****8000"
    code = texting.wait_for_code(PHONE, after=before)
    with pytest.raises(InvalidCode):
        login.second_step(half, "sms", f"{(int(code) + 1) % 10**6:06d}", False, client)
    step = login.second_step(half, "sms", code, False, client)
    assert sessions.resolve(step.token).second_step == "sms"
    assert AuditEvent.select().where(AuditEvent.event == "sms_code_sent").count() == 2


def test_a_number_gets_one_text_a_minute_and_five_an_hour(texting, user, full_session, client):
    factors.send_bind_code(full_session, user, "sms", {"address": PHONE}, client)
    age_sent_codes(61)  # past the page's own pause: the number's minute cap still holds
    with pytest.raises(Throttled, match="向该号码发送短信过于频繁"):
        factors.send_bind_code(full_session, user, "sms", {"address": PHONE}, client)
    assert len(texting.messages) == 1
    next_minute()
    for _ in range(4):
        age_sent_codes(61)
        factors.send_bind_code(full_session, user, "sms", {"address": PHONE}, client)
        next_minute()
    age_sent_codes(61)
    with pytest.raises(Throttled):
        factors.send_bind_code(full_session, user, "sms", {"address": PHONE}, client)
    assert len(texting.messages) == 5
    assert not any(PHONE in row.key for row in ThrottleCounter.select())  # counters hold no numbers


def test_unbind_by_a_texted_code(texting, user, full_session, client):
    bind(full_session, user, client, texting)
    next_minute()
    before = len(texting.codes(PHONE))
    factors.send_code(full_session, user, "sms", client)
    factors.unbind(full_session, user, "sms", "sms", texting.wait_for_code(PHONE, after=before), client)
    assert not Factor.select().exists()
    assert throttle.failures("otp", user.account) == 0
