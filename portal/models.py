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
    password_hash = pw.CharField(max_length=255)  # argon2id; "" for a directory account (LDAP, IMAP)
    directory_id = pw.CharField(max_length=128, default="")  # the directory's stable id (LDAP entryUUID)
    role = pw.CharField(max_length=16, default="")  # admin | helpdesk | auditor: the console (portal.services.roles)
    disabled = pw.BooleanField(default=False)
    force_2fa = pw.BooleanField(default=False)
    extra_methods = pw.CharField(max_length=100, default="")
    default_method = pw.CharField(max_length=16, default="")  # 默认验证方式; "" = the recommended order
    language = pw.CharField(max_length=8, default="")  # "zh_CN", "en"; "" = the browser's (portal.i18n)
    bind_snoozes_used = pw.IntegerField(default=0)  # 稍后绑定 chosen so far (policy force_2fa_snoozes)
    password_changed_at = pw.DateTimeField(default=utcnow)
    created_at = pw.DateTimeField(default=utcnow)

    @classmethod
    def by_account(cls, account: str) -> User | None:
        return cls.get_or_none(cls.account == account)

    @property
    def is_staff(self) -> bool:
        """Has a console role: always forced to bind, second step at every login, no trusted devices."""
        return bool(self.role)


class Factor(BaseModel):
    """A confirmed second factor; one per method per account."""

    user = pw.ForeignKeyField(User, backref="factors", on_delete="CASCADE")
    method = pw.CharField(max_length=16)
    label = pw.CharField(max_length=200, default="")
    secret = pw.TextField(default="")  # encrypted with the data key
    external_id = pw.CharField(max_length=128, default="", index=True)  # WeChat appid:openid, App device id
    last_used_step = pw.BigIntegerField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "method"), True),)

    @classmethod
    def of_user(cls, user_id: int) -> list[Factor]:
        return list(cls.select().where(cls.user == user_id).order_by(cls.id))

    @classmethod
    def of(cls, user: User | int, method: str) -> Factor | None:
        """The user's factor of one method, if bound."""
        return cls.get_or_none((cls.user == user) & (cls.method == method))

    @classmethod
    def holding(cls, method: str, external_id: str):
        """The factors of ``method`` resting on one outside thing (a WeChat user, an App device, a token)."""
        return cls.select().where((cls.method == method) & (cls.external_id == external_id))

    def claim_step(self, step: int) -> bool:
        """Atomically record time step ``step`` as used; False if it (or a later one) was used already."""
        factor = type(self)
        unused = factor.last_used_step.is_null() | (factor.last_used_step < step)
        query = factor.update(last_used_step=step, last_used_at=utcnow()).where((factor.id == self.id) & unused)
        return query.execute() == 1


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
    verified_at = pw.DateTimeField(null=True)  # last second-factor proof in this session (None: never)
    # How the login passed the second step: the factor method ("totp", "app", …), "trusted_device",
    # "trusted_network", or "" (no second step: no factor bound, or not done yet). Single sign-on shows it in amr.
    second_step = pw.CharField(max_length=16, default="")


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

    class Meta:
        # The 审计日志 search pages newest first by (created_at, id) under each filter (migration 21).
        # The account and IP prefix indexes are made there per backend (byte order on PostgreSQL).
        indexes = (
            (("created_at", "id"), False),
            (("event", "created_at", "id"), False),
            (("outcome", "created_at", "id"), False),
        )


class Setting(BaseModel):
    key = pw.CharField(max_length=64, primary_key=True)
    value = pw.TextField()


class WeChatUser(BaseModel):
    """A WeChat user of the 邮箱安全助手 mini-program, known by (appid, openid).

    An openid is only unique within one mini-program: a second mini-program, or a new appid,
    gives the same person another openid, and another person may have this one there.
    """

    appid = pw.CharField(max_length=64, default="")
    openid = pw.CharField(max_length=128)
    unionid = pw.CharField(max_length=128, default="")
    session_key = pw.TextField(default="")  # encrypted; never leaves the server
    created_at = pw.DateTimeField(default=utcnow)
    last_login_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("appid", "openid"), True),)

    @property
    def binding_id(self) -> str:
        """What a WeChat Factor stores in external_id: ``appid:openid``."""
        return f"{self.appid}:{self.openid}"

    @classmethod
    def of_binding(cls, binding_id: str) -> WeChatUser | None:
        appid, _, openid = binding_id.partition(":")
        return cls.get_or_none((cls.appid == appid) & (cls.openid == openid))


class ApiToken(BaseModel):
    """Opaque bearer token of the mini-program API; only its HMAC is stored."""

    token_hash = pw.CharField(max_length=64, unique=True)
    wechat_user = pw.ForeignKeyField(WeChatUser, on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()


class Ticket(BaseModel):
    """A QR ticket (bind / login / unbind / rebind) bound to the browser session that made it.

    State moves only by conditional UPDATEs:
    pending → scanned → approved | denied → consumed; or expired by time.
    """

    token_hash = pw.CharField(max_length=64, unique=True)
    method = pw.CharField(max_length=16)  # wechat | app
    purpose = pw.CharField(max_length=16)  # bind | login | unbind | rebind
    target = pw.CharField(max_length=16, default="")  # the method being unbound or changed
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    session = pw.ForeignKeyField(LoginSession, on_delete="CASCADE")
    state = pw.CharField(max_length=16, default="pending")
    approver = pw.CharField(max_length=128, default="")  # openid / device id that decided
    trust_device = pw.BooleanField(default=False)
    replaces = pw.BooleanField(default=False)  # a bind that is the second half of 修改
    channel = pw.CharField(max_length=8, default="qr")  # qr: scanned by the phone; push: sent to the App
    match_number = pw.IntegerField(default=0)  # push: the number the user must pick in the App
    choices = pw.CharField(max_length=32, default="")  # push: the numbers the App offers
    deny_reason = pw.CharField(max_length=16, default="")  # not_me | number_mismatch | …
    ip = pw.CharField(max_length=64, default="")
    user_agent = pw.CharField(max_length=300, default="")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    decided_at = pw.DateTimeField(null=True)


class Device(BaseModel):
    """An enrolled 邮箱安全 App; its key (Ed25519 or ECDSA P-256) signs every request it makes.

    It acts for its user only while a Factor(method="app") names its device_id.
    """

    device_id = pw.CharField(max_length=64, unique=True)
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    # base64 of the raw key: 32 bytes (Ed25519, 44 characters) or the uncompressed P-256 point (65 bytes, 88)
    public_key = pw.CharField(max_length=128)
    algorithm = pw.CharField(max_length=16, default="Ed25519")  # Ed25519 | ES256
    name = pw.CharField(max_length=100, default="")
    platform = pw.CharField(max_length=100, default="")
    created_at = pw.DateTimeField(default=utcnow)
    last_seen_at = pw.DateTimeField(default=utcnow)


class DeviceSignature(BaseModel):
    """Signed requests already accepted (sha256 of device id and signing input): none is accepted twice."""

    signature_hash = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)


class PushSubscription(BaseModel):
    """Where the push service of an App's browser takes Web Pushes (RFC 8030); one per device."""

    device = pw.ForeignKeyField(Device, unique=True, on_delete="CASCADE")
    endpoint = pw.CharField(max_length=1000)
    p256dh = pw.CharField(max_length=100)  # base64url of the browser's P-256 point (RFC 8291 ua_public)
    auth = pw.CharField(max_length=32)  # base64url of its 16-byte authentication secret
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)


class CacheEntry(BaseModel):
    """Small shared cache (e.g. the WeChat access_token) so that every worker sees one value."""

    key = pw.CharField(max_length=128, primary_key=True)
    value = pw.TextField()
    expires_at = pw.DateTimeField(null=True)


class AppPassword(BaseModel):
    """A 客户端专用密码 for IMAP/POP3/SMTP clients: shown once, stored only as its HMAC."""

    user = pw.ForeignKeyField(User, backref="app_passwords", on_delete="CASCADE")
    name = pw.CharField(max_length=32)
    secret_hash = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)
    last_protocol = pw.CharField(max_length=8, default="")  # imap | pop3 | smtp
    last_ip = pw.CharField(max_length=64, default="")

    class Meta:
        indexes = ((("user", "name"), True),)

    @classmethod
    def of_user(cls, user_id: int) -> list[AppPassword]:
        return list(cls.select().where(cls.user == user_id).order_by(cls.created_at.desc(), cls.id.desc()))


class MailedCode(BaseModel):
    """A 6-digit code sent to a 备用邮箱 (mail) or a phone (短信): to bind that address, or as a second step.

    Only the browser session that asked may use it, once (using it deletes it), before it expires;
    only its salted HMAC is kept.
    """

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    session = pw.ForeignKeyField(LoginSession, on_delete="CASCADE")
    channel = pw.CharField(max_length=8, default="email")  # email | sms
    purpose = pw.CharField(max_length=16)  # bind (a new address) | verify (the bound one)
    address = pw.TextField()  # encrypted with the data key
    code_hash = pw.CharField(max_length=96)  # salt:HMAC
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()


class OAuthClient(BaseModel):
    """A relying party of the OpenID Connect provider (webmail, a campus app, Dovecot as resource server)."""

    client_id = pw.CharField(max_length=64, unique=True)
    name = pw.CharField(max_length=100)
    secret_hash = pw.CharField(max_length=64, default="")  # HMAC of the secret; "" for a public client
    redirect_uris = pw.TextField(default="")  # one per line, compared exactly
    post_logout_redirect_uris = pw.TextField(default="")
    public = pw.BooleanField(default=False)  # no secret: PKCE S256 and nonce required
    resource_server = pw.BooleanField(default=False)  # may introspect any token (e.g. Dovecot)
    created_at = pw.DateTimeField(default=utcnow)


class OAuthCode(BaseModel):
    """An authorization code: 60 s, single use (``used_at`` set by one conditional UPDATE)."""

    code_hash = pw.CharField(max_length=64, unique=True)
    client = pw.ForeignKeyField(OAuthClient, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    session = pw.ForeignKeyField(LoginSession, on_delete="CASCADE")
    redirect_uri = pw.TextField()
    scope = pw.CharField(max_length=200, default="")
    nonce = pw.CharField(max_length=255, default="")
    code_challenge = pw.CharField(max_length=128, default="")
    code_challenge_method = pw.CharField(max_length=8, default="")
    auth_time = pw.DateTimeField()
    amr = pw.CharField(max_length=64, default="")  # space-separated RFC 8176 values
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)


class OAuthToken(BaseModel):
    """An access token (and, for confidential clients, its refresh token); only their HMACs are kept.

    Active while not revoked, not expired, and its browser session has not ended. A refresh rotates
    the row (old one revoked, same ``family``); presenting a rotated refresh token revokes the family.
    """

    access_hash = pw.CharField(max_length=64, unique=True)
    refresh_hash = pw.CharField(max_length=64, null=True, unique=True)
    family = pw.CharField(max_length=32, index=True)
    client = pw.ForeignKeyField(OAuthClient, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    session = pw.ForeignKeyField(LoginSession, on_delete="CASCADE")
    code = pw.ForeignKeyField(OAuthCode, null=True, on_delete="SET NULL")
    scope = pw.CharField(max_length=200, default="")
    amr = pw.CharField(max_length=64, default="")
    auth_time = pw.DateTimeField()
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()  # the access token's end
    refresh_expires_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)


class RecoveryCode(BaseModel):
    """备用码: one of a user's one-time recovery codes; only its HMAC is stored (invariant 6)."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    code_hash = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    used_at = pw.DateTimeField(null=True)


class HardwareToken(BaseModel):
    """A 动态口令 (hardware OTP token) the admin imported; a user binds it by serial number and a code.

    One-time use moves only by conditional UPDATEs: HOTP ``counter`` is the next counter value the
    token may show (a used code moves it past), TOTP ``last_used_step`` the newest time step used.
    """

    serial = pw.CharField(max_length=64, unique=True)
    kind = pw.CharField(max_length=8)  # hotp | totp
    secret = pw.TextField()  # base32, encrypted with the data key
    algorithm = pw.CharField(max_length=8, default="sha1")  # sha1 | sha256 | sha512
    digits = pw.IntegerField(default=6)  # 6 | 8
    period = pw.IntegerField(default=30)  # TOTP time step, seconds
    counter = pw.BigIntegerField(default=0)  # HOTP: the next counter value expected
    last_used_step = pw.BigIntegerField(null=True)  # TOTP replay guard
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")  # assigned to
    assigned_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    @classmethod
    def by_serial(cls, serial: str) -> HardwareToken | None:
        return cls.get_or_none(cls.serial == serial)


class SecurityKey(BaseModel):
    """A 安全密钥: a WebAuthn credential (security key or passkey) of a user; a user may have several.

    Only public data: the credential id and its COSE public key (base64url). ``sign_count`` only
    grows, by a conditional UPDATE (a counter going back means a cloned key).
    """

    user = pw.ForeignKeyField(User, backref="security_keys", on_delete="CASCADE")
    credential_id = pw.CharField(max_length=255, unique=True)  # base64url
    public_key = pw.TextField()  # base64url of the COSE key
    sign_count = pw.BigIntegerField(default=0)
    transports = pw.CharField(max_length=100, default="")  # comma-separated: usb,nfc,ble,internal,hybrid
    aaguid = pw.CharField(max_length=36, default="")  # the authenticator model (zeros with attestation none)
    name = pw.CharField(max_length=32)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    @classmethod
    def of_user(cls, user: User | int) -> list[SecurityKey]:
        return list(cls.select().where(cls.user == user).order_by(cls.created_at, cls.id))


class MailOutbox(BaseModel):
    """A mail waiting to be sent outside the request (security notices); one per event and recipient."""

    recipient = pw.CharField(max_length=254)
    subject = pw.CharField(max_length=200)
    body = pw.TextField()
    dedup_key = pw.CharField(max_length=320, unique=True)  # e.g. audit:<event id>:<recipient>
    created_at = pw.DateTimeField(default=utcnow)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(null=True, default=utcnow, index=True)  # null: given up
    sent_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(default="")


class MailLoginCount(BaseModel):
    """IMAP/POP3/SMTP logins of one client in one hour (登录记录): one row, however often it polled."""

    user = pw.ForeignKeyField(User, null=True, on_delete="CASCADE")
    account = pw.CharField(max_length=254)
    protocol = pw.CharField(max_length=8)
    ip = pw.CharField(max_length=64, default="")
    client = pw.CharField(max_length=100, default="")  # what the mail proxy says of the client ("" = nothing)
    outcome = pw.CharField(max_length=24)  # ok | fail | throttled | the refusal's reason
    hour = pw.DateTimeField()  # UTC, truncated to the hour
    count = pw.IntegerField(default=0)
    first_at = pw.DateTimeField()
    last_at = pw.DateTimeField(index=True)

    class Meta:
        indexes = (
            (("account", "protocol", "ip", "client", "outcome", "hour"), True),
            (("user", "last_at"), False),
        )


class SeenSignIn(BaseModel):
    """What a completed web login of an account came from lately: a browser (hashed) or a region."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    kind = pw.CharField(max_length=8)  # device | region
    value = pw.CharField(max_length=64)  # device: HMAC of the portal_browser cookie; region: 广东省, 美国 …
    first_at = pw.DateTimeField(default=utcnow)
    last_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("user", "kind", "value"), True),)


class TemporaryAccessCode(BaseModel):
    """临时访问码: issued by the helpdesk for a user who lost the phone; passes the second step once (then
    the user must bind a factor). Only its HMAC is stored; a new one revokes the unused one before it."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    code_hash = pw.CharField(max_length=64, unique=True)
    issued_by = pw.CharField(max_length=254, default="")  # the staff account that issued it
    reason = pw.CharField(max_length=200, default="")  # why (a ticket number)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField(index=True)
    used_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)


class AuditDaily(BaseModel):
    """Audit events counted per local day (Asia/Shanghai), event, method and outcome, kept up by
    ``audit.record`` in the event's transaction: the 统计报表's charts read these few rows, never the log.
    ``prune --audit-days`` keeps them. Also counts what leaves no event: expired login tickets (prune)."""

    day = pw.DateField()
    event = pw.CharField(max_length=48)
    method = pw.CharField(max_length=16, default="")
    outcome = pw.CharField(max_length=16, default="ok")
    total = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("day", "event", "method", "outcome"), True),)


class AdoptionDaily(BaseModel):
    """Accounts (enabled) with a method bound, at a local day's end; method "" = with any second factor."""

    day = pw.DateField()
    method = pw.CharField(max_length=16, default="")
    accounts = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("day", "method"), True),)


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
    WeChatUser,
    ApiToken,
    Ticket,
    CacheEntry,
    Device,
    DeviceSignature,
    AppPassword,
    MailedCode,
    OAuthClient,
    OAuthCode,
    OAuthToken,
    RecoveryCode,
    HardwareToken,
    SecurityKey,
    PushSubscription,
    MailOutbox,
    MailLoginCount,
    SeenSignIn,
    TemporaryAccessCode,
    AuditDaily,
    AdoptionDaily,
]
