"""GET /accounts: every mail account bound to this WeChat user, each with its current code."""

from __future__ import annotations

import re
import time
from datetime import datetime

import pyotp

from portal import crypto
from portal.models import Factor
from portal.services import factors, otp
from portal.services import wechat as wechat_service
from tests.api.support import BROWSER, error_code


class FrozenTime:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


def test_lists_every_account_bound_to_this_wechat_user(ctx, user, bob, phone, wx_login):
    token = wx_login("o-shared")
    alice_factor, bob_factor = phone.bind(token, user), phone.bind(token, bob)

    before = time.time()
    response = phone.call("GET", "/accounts", token)
    after = time.time()

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"server_time", "accounts"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["server_time"])
    server_time = datetime.fromisoformat(body["server_time"]).timestamp()  # "Z": UTC
    assert before - 1 <= server_time <= after + 1
    rows = body["accounts"]
    assert [(r["id"], r["account"]) for r in rows] == [(alice_factor.id, user.account), (bob_factor.id, bob.account)]
    for row, factor in zip(rows, (alice_factor, bob_factor), strict=True):
        assert set(row) == {"id", "account", "code", "period", "remaining"}
        totp = pyotp.TOTP(crypto.decrypt(factor.secret))
        assert re.fullmatch(r"[0-9]{6}", row["code"])
        assert row["code"] in {totp.at(before), totp.at(after)}  # .now(), whichever side of a step edge
        assert row["period"] == 30
        assert 0 < row["remaining"] <= 30
    assert crypto.decrypt(alice_factor.secret) != crypto.decrypt(bob_factor.secret)


def test_codes_and_remaining_follow_the_clock(ctx, user, phone, wx_login, monkeypatch):
    token = wx_login("o-alice")
    factor = phone.bind(token, user)
    secret = crypto.decrypt(factor.secret)
    step_start = (int(time.time()) // 30) * 30
    for offset, remaining in ((0, 30), (12, 18), (29, 1)):
        monkeypatch.setattr(wechat_service, "time", FrozenTime(step_start + offset + 0.5))
        (row,) = phone.accounts(token)
        assert row["code"] == pyotp.TOTP(secret).at(step_start + offset)
        assert row["remaining"] == remaining
    monkeypatch.setattr(wechat_service, "time", FrozenTime(step_start + 30))
    (row,) = phone.accounts(token)
    assert row["code"] == pyotp.TOTP(secret).at(step_start + 30)
    assert row["remaining"] == 30


def test_the_code_shown_is_accepted_at_the_second_step(ctx, user, phone, wx_login):
    token = wx_login("o-alice")
    factor = phone.bind(token, user)
    (row,) = phone.accounts(token)
    if row["remaining"] < 2:  # about to roll over: take the next one
        time.sleep(row["remaining"] + 0.1)
        (row,) = phone.accounts(token)
    assert factors.verify(user, "wechat", row["code"], BROWSER, "login") == "wechat"
    assert Factor.get_by_id(factor.id).last_used_step is not None


def test_another_wechat_user_sees_none_of_them(ctx, user, bob, phone, wx_login):
    owner, stranger = wx_login("o-owner"), wx_login("o-stranger")
    phone.bind(owner, user)
    phone.bind(owner, bob)
    assert phone.accounts(stranger) == []
    assert len(phone.accounts(owner)) == 2


def test_each_wechat_user_sees_only_their_own_account(ctx, user, bob, phone, wx_login):
    first, second = wx_login("o-first"), wx_login("o-second")
    phone.bind(first, user)
    phone.bind(second, bob)
    assert [r["account"] for r in phone.accounts(first)] == [user.account]
    assert [r["account"] for r in phone.accounts(second)] == [bob.account]


def test_other_factors_with_the_same_external_id_are_not_listed(ctx, user, bob, phone, wx_login):
    token = wx_login("o-alice")
    Factor.create(user=bob, method="app", external_id="o-alice", secret=crypto.encrypt(otp.new_secret()))
    assert phone.accounts(token) == []


def test_an_unbound_account_disappears(ctx, user, bob, phone, wx_login):
    token = wx_login("o-alice")
    phone.bind(token, user)
    phone.bind(token, bob)
    factors.remove(user, "wechat", BROWSER, via="wechat")
    assert phone.signed_out(token)  # the token rested on the removed factor (invariant 14)
    assert [row["account"] for row in phone.accounts(wx_login("o-alice"))] == [bob.account]


def test_accounts_needs_a_token(ctx, phone):
    response = phone.call("GET", "/accounts")
    assert (response.status_code, error_code(response)) == (401, "invalid_token")
