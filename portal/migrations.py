"""Versioned schema: each migration runs once, in order; init-db is idempotent."""

from __future__ import annotations

from collections.abc import Callable

import peewee
from flask import current_app
from playhouse.migrate import SchemaMigrator, migrate

from portal import models
from portal.db import db
from portal.models import SchemaVersion


def _create(*tables: type[peewee.Model]) -> Callable[[], None]:
    return lambda: db.create_tables(tables, safe=True)


def _add_missing_columns(model: type[peewee.Model]) -> None:
    """Add the model's columns that the table lacks (tables may come from an older release)."""
    present = {column.name for column in db.get_columns(model._meta.table_name)}
    migrator = SchemaMigrator.from_database(db.obj)
    missing = [f for f in model._meta.sorted_fields if f.column_name not in present]
    migrate(*(migrator.add_column(model._meta.table_name, f.column_name, f) for f in missing))


def _wechat_schema() -> None:
    _create(models.WeChatUser, models.ApiToken, models.Ticket, models.CacheEntry)()
    _add_missing_columns(models.Factor)


def _app_schema() -> None:
    _create(models.Device, models.DeviceSignature)()
    _add_missing_columns(models.Ticket)


def _wechat_appid_and_session_verification() -> None:
    """WeChat users keyed by (appid, openid); existing ones belong to the configured mini-program."""
    _add_missing_columns(models.LoginSession)
    _add_missing_columns(models.WeChatUser)
    table = models.WeChatUser._meta.table_name
    indexes = {index.name for index in db.get_indexes(table)}
    migrator = SchemaMigrator.from_database(db.obj)
    if f"{table}_openid" in indexes:
        migrate(migrator.drop_index(table, f"{table}_openid"))
    appid = str(current_app.config["WECHAT_APPID"])
    unkeyed = models.WeChatUser.appid == ""
    models.WeChatUser.update(appid=appid).where(unkeyed).execute()
    if f"{table}_appid_openid" not in indexes:
        migrate(migrator.add_index(table, ("appid", "openid"), unique=True))
    wechat = (models.Factor.method == "wechat") & ~models.Factor.external_id.contains(":")
    models.Factor.update(external_id=peewee.Value(f"{appid}:").concat(models.Factor.external_id)).where(
        wechat
    ).execute()


def _single_sign_on_schema() -> None:
    _add_missing_columns(models.LoginSession)
    _create(models.OAuthClient, models.OAuthCode, models.OAuthToken)()


def _app_web_schema() -> None:
    """ECDSA P-256 device keys beside Ed25519 (an 88-character key, the algorithm); Web Push subscriptions."""
    _add_missing_columns(models.Device)
    if isinstance(db.obj, peewee.PostgresqlDatabase):  # SQLite does not enforce a VARCHAR's length
        migrator = SchemaMigrator.from_database(db.obj)
        migrate(
            migrator.alter_column_type(models.Device._meta.table_name, "public_key", peewee.CharField(max_length=128))
        )
    _create(models.PushSubscription)()


def _console_roles() -> None:
    """User.is_admin becomes User.role: every admin keeps everything (role admin)."""
    _add_missing_columns(models.User)
    columns = {column.name for column in db.get_columns(models.User._meta.table_name)}
    if "is_admin" in columns:
        models.User.update(role="admin").where(peewee.SQL("is_admin")).execute()
        migrate(SchemaMigrator.from_database(db.obj).drop_column(models.User._meta.table_name, "is_admin"))


# The 审计日志 search (portal.services.audit_search) matches account and IP by prefix as a range of
# byte-ordered text: on PostgreSQL its index must compare in the "C" collation, whatever the database's.
BYTE_ORDER = {"postgresql": ' COLLATE "C"', "sqlite": ""}
AUDIT_PREFIX_INDEXES = {
    "audit_event_account_prefix": "account",
    "audit_event_ip_prefix": "ip",
}


def _audit_search_indexes() -> None:
    """Composite indexes for the 审计日志 filters, each ending in the page order (created_at, id).

    IF NOT EXISTS throughout: a database created by migration 1 from today's model has the Meta ones.
    """
    models.AuditEvent._schema.create_indexes(safe=True)
    collate = BYTE_ORDER["postgresql" if isinstance(db.obj, peewee.PostgresqlDatabase) else "sqlite"]
    table = models.AuditEvent._meta.table_name
    for name, column in AUDIT_PREFIX_INDEXES.items():
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS {name} ON "{table}" ("{column}"{collate}, "created_at", "id")')


def _report_summaries() -> None:
    """统计报表 at scale: daily counts of audit events and of adoption, filled from what exists; indexes
    for the report's rolling 24-hour / 7-day counts by event and outcome."""
    from portal.services import report_summary  # services import models; migrations load early

    _create(models.AuditDaily, models.AdoptionDaily)()
    table = models.AuditEvent._meta.table_name
    # (outcome, created_at) is covered by migration 21's (outcome, created_at, id).
    for columns in (("event", "outcome", "created_at"),):
        name = "_".join((table, *columns))
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")
    db.execute_sql('CREATE INDEX IF NOT EXISTS user_disabled ON "user" (disabled)')  # adoption: enabled accounts
    report_summary.rebuild()
    report_summary.backfill_adoption()


# Append new migrations here; never edit one that has shipped. Tables are created from the
# current models (safe=True), so later migrations add what older databases lack.
MIGRATIONS: list[tuple[int, str, Callable[[], None]]] = [
    (
        1,
        "initial schema",
        _create(
            models.SchemaVersion,
            models.User,
            models.Factor,
            models.LoginSession,
            models.Enrollment,
            models.Grant,
            models.TrustedDevice,
            models.ThrottleCounter,
            models.AuditEvent,
            models.Setting,
        ),
    ),
    (2, "WeChat users, API tokens, QR tickets, shared cache; factor.external_id", _wechat_schema),
    (3, "app passwords (客户端专用密码)", _create(models.AppPassword)),
    (4, "邮箱安全 App devices, used signatures; push fields on tickets", _app_schema),
    (5, "codes mailed to 备用邮箱", _create(models.MailedCode)),
    (
        6,
        "WeChat users keyed by (appid, openid); when a session last proved a factor",
        _wechat_appid_and_session_verification,
    ),
    (7, "directory accounts (LDAP, IMAP): their stable id", lambda: _add_missing_columns(models.User)),
    (8, "how a session passed the second step; OpenID Connect clients, codes, tokens", _single_sign_on_schema),
    (9, "备用码 (recovery codes)", _create(models.RecoveryCode)),
    (10, "动态口令 hardware tokens", _create(models.HardwareToken)),
    (11, "安全密钥 (WebAuthn credentials)", _create(models.SecurityKey)),
    (12, "短信 codes beside mailed ones: the channel of a sent code", lambda: _add_missing_columns(models.MailedCode)),
    (13, "邮箱安全 App as a web app: ECDSA P-256 device keys; Web Push subscriptions", _app_web_schema),
    (14, "默认验证方式: the method the second step opens with", lambda: _add_missing_columns(models.User)),
    (15, "mail outbox: security notices sent outside the request", _create(models.MailOutbox)),
    (16, "the language an account reads its pages and notices in", lambda: _add_missing_columns(models.User)),
    (17, "登录记录: mail-client logins counted per client and hour", _create(models.MailLoginCount)),
    (
        18,
        "new device / new place: the browsers and regions an account signed in from lately",
        _create(models.SeenSignIn),
    ),
    (19, "console roles: admin, helpdesk, auditor (was: is_admin)", _console_roles),
    (
        20,
        "统计报表: daily summaries of audit events and adoption; indexes by event/outcome and time",
        _report_summaries,
    ),
    (21, "审计日志 search: composite indexes for its filters, in page order", _audit_search_indexes),
    (22, "临时访问码 (temporary access codes issued by the helpdesk)", _create(models.TemporaryAccessCode)),
    (23, "稍后绑定: how many times an account put off a forced binding", lambda: _add_missing_columns(models.User)),
]


def current_version() -> int:
    if not SchemaVersion.table_exists():
        return 0
    latest = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()  # newest applied
    return latest.version if latest else 0


def applied_versions() -> set[int]:
    if not SchemaVersion.table_exists():
        return set()
    return {row.version for row in SchemaVersion.select(SchemaVersion.version)}


def upgrade() -> list[str]:
    """Apply every migration not yet recorded, in order; return the names of those applied."""
    applied = []
    done = applied_versions()  # one query when nothing is due (every start of every worker)
    for version, name, apply in sorted(MIGRATIONS, key=lambda migration: migration[0]):
        if version in done:
            continue
        with db.atomic():
            if version in applied_versions():  # another process applied it meanwhile
                continue
            apply()
            SchemaVersion.create(version=version)
            applied.append(f"{version}: {name}")
    return applied
