"""`flask --app wsgi prune`: expired rows go, live ones (and, by default, the audit log) stay."""

from __future__ import annotations

from datetime import timedelta

from portal import crypto
from portal.models import (
    ApiToken,
    AuditEvent,
    CacheEntry,
    Enrollment,
    Grant,
    LoginSession,
    MailedCode,
    Ticket,
    TrustedDevice,
    WeChatUser,
    utcnow,
)
from portal.services import audit, housekeeping, sessions, throttle, tickets, trust


def backdate(session: LoginSession, **fields) -> None:
    LoginSession.update(**fields).where(LoginSession.id == session.id).execute()


def session_with_dependents(user, client) -> LoginSession:
    """A session with a QR ticket, an enrollment, a grant and a mailed code hanging on it."""
    session = sessions.resolve(sessions.start(user, sessions.FULL, client))
    tickets.create(session, user, "wechat", "bind", client)
    later = utcnow() + timedelta(minutes=10)
    Enrollment.create(user=user, session=session, method="totp", expires_at=later)
    Grant.create(session=session, purpose="change:totp", expires_at=later)
    MailedCode.create(
        user=user,
        session=session,
        purpose="verify",
        address=crypto.encrypt("x@y.org"),
        code_hash="s:h",
        expires_at=later,
    )
    return session


def test_dead_sessions_go_with_what_hangs_on_them(user, client):
    ended = session_with_dependents(user, client)
    expired = session_with_dependents(user, client)
    live = session_with_dependents(user, client)
    two_days_ago = utcnow() - timedelta(days=2)
    backdate(ended, ended_at=two_days_ago)
    backdate(expired, expires_at=two_days_ago)
    just_ended = sessions.resolve(sessions.start(user, sessions.FULL, client))
    sessions.end(just_ended, "logout")  # within the grace day: kept

    counts = housekeeping.prune()

    assert counts["login sessions"] == 2
    assert {s.id for s in LoginSession.select()} == {live.id, just_ended.id}
    for model in (Ticket, Enrollment, Grant, MailedCode):
        assert {row.session_id for row in model.select()} == {live.id}, model.__name__


def test_counters_of_past_windows_go(ctx, client):
    now = utcnow()
    throttle.begin("password", "a@x.cn", client.ip, now=now - timedelta(days=2))
    throttle.begin("password", "a@x.cn", client.ip, now=now)
    assert housekeeping.prune(now)["throttle counters"] == 2  # the account's and the IP's old ones
    assert throttle.failures("password", "a@x.cn", now=now) == 1


def test_trusted_devices_stay_listed_for_a_while_after_they_end(user, client):
    recent = trust.issue(user, client, "totp")
    old = trust.issue(user, client, "totp")
    assert recent and old
    long_ago = utcnow() - housekeeping.TRUSTED_DEVICE_HISTORY - timedelta(days=1)
    TrustedDevice.update(revoked_at=long_ago).where(TrustedDevice.token_hash == crypto.token_hash(old)).execute()
    TrustedDevice.update(revoked_at=utcnow()).where(TrustedDevice.token_hash == crypto.token_hash(recent)).execute()
    assert housekeeping.prune()["trusted devices"] == 1
    assert TrustedDevice.select().count() == 1


def test_the_audit_log_is_kept_unless_an_age_is_given(user):
    audit.record("login_password", user=user)
    old = AuditEvent.select().count()  # with the user's creation
    AuditEvent.update(created_at=utcnow() - timedelta(days=400)).execute()
    audit.record("login_password", user=user)
    assert "audit events" not in housekeeping.prune()
    assert AuditEvent.select().count() == old + 1
    assert housekeeping.prune(audit_days=365)["audit events"] == old
    assert AuditEvent.select().count() == 1


def test_expired_tokens_and_cache_entries_go(ctx):
    now = utcnow()
    wx_user = WeChatUser.create(openid="o-prune")
    for name, expires in (("old", now - timedelta(seconds=1)), ("live", now + timedelta(hours=1))):
        ApiToken.create(token_hash=name, wechat_user=wx_user, expires_at=expires)
        CacheEntry.create(key=name, value="v", expires_at=expires)
    CacheEntry.create(key="forever", value="v", expires_at=None)
    counts = housekeeping.prune(now)
    assert (counts["mini-program tokens"], counts["cache entries"]) == (1, 1)
    assert [t.token_hash for t in ApiToken.select()] == ["live"]
    assert sorted(c.key for c in CacheEntry.select()) == ["forever", "live"]


def test_single_sign_on_codes_and_tokens_go_a_day_after_their_end(user, client):
    from portal.models import OAuthClient, OAuthCode, OAuthToken

    session = sessions.resolve(sessions.start(user, sessions.FULL, client))
    rp = OAuthClient.create(client_id="rp", name="网页邮箱", redirect_uris="https://rp/cb")
    now = utcnow()

    def code(hash_, expires):
        return OAuthCode.create(
            code_hash=hash_,
            client=rp,
            user=user,
            session=session,
            redirect_uri="https://rp/cb",
            auth_time=now,
            expires_at=expires,
        )

    def token(hash_, expires, refresh=None, revoked=None):
        return OAuthToken.create(
            access_hash=hash_,
            family=hash_,
            client=rp,
            user=user,
            session=session,
            auth_time=now,
            expires_at=expires,
            refresh_expires_at=refresh,
            revoked_at=revoked,
        )

    old, fresh = now - timedelta(days=2), now + timedelta(minutes=1)
    code("old", old), code("fresh", fresh)
    token("expired", old), token("revoked", fresh, revoked=old), token("refreshable", old, refresh=fresh)
    token("live", fresh)
    counts = housekeeping.prune()
    assert counts["single sign-on codes"] == 1 and counts["single sign-on tokens"] == 2
    assert {c.code_hash for c in OAuthCode.select()} == {"fresh"}
    assert {t.access_hash for t in OAuthToken.select()} == {"refreshable", "live"}
