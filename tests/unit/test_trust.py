"""Trusted devices: bound to one user, expiring, listed and revocable (invariant 9)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal import crypto
from portal.models import AuditEvent, TrustedDevice, utcnow
from portal.services import accounts, trust
from portal.services.client import Client
from portal.services.errors import NotFound
from tests.conftest import PASSWORD


@pytest.fixture
def bob(ctx):
    return accounts.create("bob@mail.xamd.edu.cn", PASSWORD)


def _row(token: str) -> TrustedDevice:
    return TrustedDevice.get(TrustedDevice.token_hash == crypto.token_hash(token))


def test_issue_stores_only_a_hash_and_is_trusted(user, client, app):
    lifetime = timedelta(days=int(app.config["TRUSTED_DEVICE_DAYS"]))
    before = utcnow()
    token = trust.issue(user, client, "totp")
    after = utcnow()
    row = _row(token)
    assert token not in row.token_hash
    assert (row.method, row.ip, row.user_agent) == ("totp", client.ip, client.user_agent)
    assert before + lifetime <= row.expires_at <= after + lifetime
    assert trust.is_trusted(token, user)
    assert _row(token).last_used_at is not None
    assert AuditEvent.get(AuditEvent.event == "trusted_device_added").user_id == user.id


def test_default_lifetime_is_30_days(ctx):
    assert trust.lifetime() == timedelta(days=30)


@pytest.mark.parametrize("token", [None, "", "unknown-token", "y" * 129])
def test_unknown_tokens_are_refused(user, client, token):
    trust.issue(user, client, "totp")
    assert not trust.is_trusted(token, user)


def test_another_users_token_is_refused(user, bob, client):
    token = trust.issue(bob, client, "totp")
    assert not trust.is_trusted(token, user)
    assert trust.is_trusted(token, bob)


def test_expired_token_is_refused(user, client):
    token = trust.issue(user, client, "totp")
    TrustedDevice.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert not trust.is_trusted(token, user)
    assert trust.active(user) == []


def test_revoke_one_device(user, bob, client):
    first, second = trust.issue(user, client, "totp"), trust.issue(user, client, "totp")
    bobs = trust.issue(bob, client, "totp")
    trust.revoke(user, _row(first).id, client)
    assert not trust.is_trusted(first, user)
    assert trust.is_trusted(second, user)
    assert [d.id for d in trust.active(user)] == [_row(second).id]
    with pytest.raises(NotFound):
        trust.revoke(user, _row(first).id, client)  # already revoked
    with pytest.raises(NotFound):
        trust.revoke(user, _row(bobs).id, client)  # not mine
    assert trust.is_trusted(bobs, bob)
    assert AuditEvent.select().where(AuditEvent.event == "trusted_device_revoked").count() == 1


def test_revoke_all(user, bob, client):
    tokens = [trust.issue(user, Client(ip=f"192.0.2.{i}"), "totp") for i in range(3)]
    bobs = trust.issue(bob, client, "totp")
    assert trust.revoke_all(user, "revoked by user", client) == 3
    assert not any(trust.is_trusted(t, user) for t in tokens)
    assert trust.active(user) == []
    assert trust.is_trusted(bobs, bob)
    event = AuditEvent.get(AuditEvent.event == "trusted_devices_revoked")
    assert event.detail == "revoked by user"
    assert trust.revoke_all(user, "nothing left") == 0
    assert AuditEvent.select().where(AuditEvent.event == "trusted_devices_revoked").count() == 1


def test_active_lists_newest_first(user, client):
    trust.issue(user, Client(ip="192.0.2.1"), "totp")
    trust.issue(user, Client(ip="192.0.2.2"), "totp")
    TrustedDevice.update(created_at=utcnow() - timedelta(days=1)).where(TrustedDevice.ip == "192.0.2.1").execute()
    assert [d.ip for d in trust.active(user)] == ["192.0.2.2", "192.0.2.1"]
