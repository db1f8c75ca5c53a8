"""A forced user unbinding two factors at once from two browsers keeps one of them."""

from __future__ import annotations

import pyotp
import pytest

from portal import crypto
from portal.models import Factor, User
from portal.services import accounts, factors, policy
from portal.services.errors import NotAllowed
from tests.unit.conftest import run_threads


def test_parallel_unbinds_never_leave_a_forced_user_without_a_factor(app, ctx, user, client):
    for method in ("totp", "wechat"):
        Factor.create(user=user, method=method, secret=crypto.encrypt(pyotp.random_base32()))
    accounts.set_policy(user.account, force=True)
    policy.set_value("force_2fa", "listed")

    def unbind(index: int):
        fresh = User.get_by_id(user.id)
        factors.remove(fresh, ("totp", "wechat")[index], client, via="test")

    results = run_threads(app, 2, unbind)
    outcomes = sorted(kind if kind == "ok" else type(value).__name__ for kind, value in results)
    assert outcomes == ["NotAllowed", "ok"], results
    assert Factor.select().where(Factor.user == user).count() == 1


def test_removing_the_last_factor_of_a_forced_user_is_refused_and_rolled_back(ctx, user, client):
    Factor.create(user=user, method="totp", secret=crypto.encrypt(pyotp.random_base32()))
    accounts.set_policy(user.account, force=True)
    policy.set_value("force_2fa", "listed")
    with pytest.raises(NotAllowed):
        factors.remove(User.get_by_id(user.id), "totp", client, via="test")
    assert Factor.select().where(Factor.user == user).count() == 1
