"""Policy admin_methods: admins bind and use only the listed methods (e.g. 安全密钥), with no 备用码."""

from __future__ import annotations

import pytest

from portal.models import Factor, User
from portal.services import factors, login, policy, sessions
from portal.services.errors import InvalidCode
from portal.services.factors import recovery
from tests.conftest import PASSWORD
from tests.support.webauthn_authenticator import SoftAuthenticator

ORIGIN = "http://localhost:8000"
pytestmark = pytest.mark.config(PUBLIC_URL=ORIGIN)


@pytest.fixture
def admin(user, totp_secret, client):
    User.update(role="admin").where(User.id == user.id).execute()
    recovery.generate(user, client)
    policy.set_value("admin_methods", "webauthn")
    return User.get_by_id(user.id)


def test_an_admin_with_only_other_factors_must_bind_a_key_first(admin, totp_secret, client, clock):
    assert factors.choices(admin) == [] and factors.offered(admin) == {"webauthn"}
    step = login.password_step(admin.account, PASSWORD, client, None, None)
    assert step.stage == sessions.BINDING
    session = sessions.resolve(step.token)
    with pytest.raises(InvalidCode, match="管理员"):
        factors.verify(admin, "totp", clock.code(totp_secret), client, "login", session)

    key = SoftAuthenticator()
    pending = factors.begin_bind(session, admin, "webauthn", client)  # nothing to step up with
    credential = key.create(pending.state.options, ORIGIN)
    bound = factors.bind(session, admin, "webauthn", {"credential": credential, "name": "YubiKey"}, client)
    assert bound.token and sessions.resolve(bound.token).stage == sessions.FULL
    assert [m.key for m in factors.choices(admin)] == ["webauthn"]  # no TOTP, no 备用码


def test_without_the_policy_admins_use_any_bound_method(admin, totp_secret):
    policy.set_value("admin_methods", "")
    assert [m.key for m in factors.choices(admin)] == ["totp", "recovery"]


def test_a_factor_of_a_method_this_release_does_not_know_never_skips_the_second_step(user, client):
    Factor.create(user=user, method="retired", secret="")
    assert factors.choices(user) == []
    assert login.password_step(user.account, PASSWORD, client, None, None).stage == sessions.SECOND_FACTOR
