"""Peewee models. Times are naive UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

import peewee as pw

from portal.db import db


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    applied_at = pw.DateTimeField(default=utcnow)


class User(BaseModel):
    account = pw.CharField(max_length=254, unique=True)
    name = pw.CharField(max_length=100, default="")
    password_hash = pw.CharField(max_length=255)
    is_admin = pw.BooleanField(default=False)
    disabled = pw.BooleanField(default=False)
    force_2fa = pw.BooleanField(default=False)
    extra_methods = pw.CharField(max_length=100, default="")
    password_changed_at = pw.DateTimeField(default=utcnow)
    created_at = pw.DateTimeField(default=utcnow)

    @classmethod
    def by_account(cls, account: str) -> User | None:
        return cls.get_or_none(cls.account == account)


class Factor(BaseModel):
    """A confirmed second factor; one per method per account."""

    user = pw.ForeignKeyField(User, backref="factors", on_delete="CASCADE")
    method = pw.CharField(max_length=16)
    label = pw.CharField(max_length=200, default="")
    secret = pw.TextField(default="")  # encrypted with the data key
    last_used_step = pw.BigIntegerField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "method"), True),)

    @classmethod
    def of_user(cls, user_id: int) -> list[Factor]:
        return list(cls.select().where(cls.user == user_id).order_by(cls.id))


class LoginSession(BaseModel):
    """A browser's login; the cookie carries a random token, the table only its HMAC."""

    token_hash = pw.CharField(max_length=64, unique=True)
    user = pw.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    stage = pw.CharField(max_length=16)  # second_factor | binding | full
    ip = pw.CharField(max_length=64, default="")
    user_agent = pw.CharField(max_length=300, default="")
    created_at = pw.DateTimeField(default=utcnow)
    last_seen_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    ended_at = pw.DateTimeField(null=True)
    end_reason = pw.CharField(max_length=32, default="")


class Enrollment(BaseModel):
    """A factor being bound (绑定 or the second half of 修改); becomes a Factor when confirmed."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    session = pw.ForeignKeyField(LoginSession, on_delete="CASCADE")
    method = pw.CharField(max_length=16)
    purpose = pw.CharField(max_length=16, default="bind")  # bind | rebind
    secret = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()


class Grant(BaseModel):
    """A fresh verification that allows one sensitive step (e.g. 修改) in one session."""

    session = pw.ForeignKeyField(LoginSession, on_delete="CASCADE")
    purpose = pw.CharField(max_length=32)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)


class TrustedDevice(BaseModel):
    token_hash = pw.CharField(max_length=64, unique=True)
    user = pw.ForeignKeyField(User, backref="trusted_devices", on_delete="CASCADE")
    user_agent = pw.CharField(max_length=300, default="")
    ip = pw.CharField(max_length=64, default="")
    method = pw.CharField(max_length=16, default="")
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)
    expires_at = pw.DateTimeField()
    revoked_at = pw.DateTimeField(null=True)


class ThrottleCounter(BaseModel):
    """Failures per scope/key in a fixed window; changed only by atomic SQL increments."""

    scope = pw.CharField(max_length=16)
    key = pw.CharField(max_length=300)
    window_start = pw.DateTimeField()
    failures = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("scope", "key", "window_start"), True),)


class AuditEvent(BaseModel):
    created_at = pw.DateTimeField(default=utcnow, index=True)
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    account = pw.CharField(max_length=254, default="")
    event = pw.CharField(max_length=48, index=True)
    method = pw.CharField(max_length=16, default="")
    outcome = pw.CharField(max_length=16, default="ok")
    ip = pw.CharField(max_length=64, default="")
    user_agent = pw.CharField(max_length=300, default="")
    detail = pw.TextField(default="")


class Setting(BaseModel):
    key = pw.CharField(max_length=64, primary_key=True)
    value = pw.TextField()


ALL_MODELS = [
    SchemaVersion,
    User,
    Factor,
    LoginSession,
    Enrollment,
    Grant,
    TrustedDevice,
    ThrottleCounter,
    AuditEvent,
    Setting,
]
