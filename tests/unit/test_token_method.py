"""动态口令 as a factor: bound by serial + code (assigned or free token), a second step, HOTP resync."""

from __future__ import annotations

import pyotp
import pytest

from portal.models import Factor, HardwareToken
from portal.services import accounts, factors, hardware_tokens, login, sessions, throttle
from portal.services.errors import InvalidCode, NotAllowed, NotFound

SECRET = pyotp.random_base32()


@pytest.fixture
def tokens(ctx, tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text(
        f"serial,secret,type,digits,period,counter\nHOTP-1,{SECRET},hotp,6,30,0\nTOTP-1,{SECRET},totp,6,30,0\n"
    )
    report = hardware_tokens.import_file(str(path), fmt="csv")
    assert report.count("imported") == 2
    return pyotp.HOTP(SECRET), pyotp.TOTP(SECRET)


def bind(session, user, client, serial, code, next_code=""):
    return factors.bind(session, user, "token", {"serial": serial, "code": code, "next_code": next_code}, client)


def test_an_assigned_token_is_offered_and_binds_with_its_code(tokens, user, full_session, client):
    hotp, _ = tokens
    assert "token" not in factors.offered(user)
    hardware_tokens.assign("HOTP-1", user.account)
    assert "token" in factors.offered(user)
    factor = bind(full_session, user, client, "HOTP-1", hotp.at(0)).factor
    assert (factor.method, factor.external_id) == ("token", "HOTP-1")
    assert "序列号 HOTP-1" in factors.METHODS["token"].describe(factor)


def test_with_the_policy_a_free_token_is_claimed_by_binding(tokens, user, full_session, client):
    _, totp = tokens
    user.extra_methods = accounts.set_policy(user.account, methods="token").extra_methods
    bind(full_session, user, client, "TOTP-1", totp.now())
    assert HardwareToken.by_serial("TOTP-1").user_id == user.id


def test_a_wrong_code_binds_nothing_and_leaves_the_token_free(tokens, user, full_session, client):
    user.extra_methods = accounts.set_policy(user.account, methods="token").extra_methods
    with pytest.raises(InvalidCode):
        bind(full_session, user, client, "TOTP-1", "000000" if tokens[1].now() != "000000" else "111111")
    assert HardwareToken.by_serial("TOTP-1").user_id is None and not Factor.select().exists()
    assert throttle.failures("otp", user.account) == 1


def test_someone_elses_token_and_unknown_serials_are_refused(tokens, user, full_session, client):
    accounts.create("bob@mail.xamd.edu.cn", "correct horse battery", name="Bob")
    hardware_tokens.assign("HOTP-1", "bob@mail.xamd.edu.cn")
    user.extra_methods = accounts.set_policy(user.account, methods="token").extra_methods
    with pytest.raises(NotAllowed):
        bind(full_session, user, client, "HOTP-1", tokens[0].at(0))
    with pytest.raises(NotFound):
        bind(full_session, user, client, "NOPE", "123456")


def test_login_with_the_token_and_no_replay(tokens, user, full_session, client):
    hotp, _ = tokens
    hardware_tokens.assign("HOTP-1", user.account)
    bind(full_session, user, client, "HOTP-1", hotp.at(0))
    half = sessions.resolve(sessions.start(user, sessions.SECOND_FACTOR, client))
    with pytest.raises(InvalidCode):
        login.second_step(half, "token", hotp.at(0), False, client)  # spent at binding
    step = login.second_step(half, "token", hotp.at(3), False, client)
    assert sessions.resolve(step.token).second_step == "token"


def test_a_long_unused_hotp_token_binds_after_resync_with_two_codes(tokens, user, full_session, client):
    hotp, _ = tokens
    hardware_tokens.assign("HOTP-1", user.account)
    with pytest.raises(InvalidCode, match="连续两个动态口令"):
        bind(full_session, user, client, "HOTP-1", hotp.at(40))
    bind(full_session, user, client, "HOTP-1", hotp.at(41), next_code=hotp.at(42))
    assert HardwareToken.by_serial("HOTP-1").counter == 43


def test_an_unassigned_token_stops_working_at_once(tokens, user, full_session, client):
    hotp, _ = tokens
    hardware_tokens.assign("HOTP-1", user.account)
    bind(full_session, user, client, "HOTP-1", hotp.at(0))
    hardware_tokens.unassign("HOTP-1")
    assert not Factor.select().exists()
