"""Versioned schema: upgrade applies each migration once, in order."""

from __future__ import annotations

from peewee import PostgresqlDatabase

from portal import migrations
from portal.db import db
from portal.models import ALL_MODELS, SchemaVersion


def test_upgrade_twice_is_idempotent(ctx):
    assert migrations.current_version() == migrations.MIGRATIONS[-1][0]
    assert migrations.upgrade() == []
    assert migrations.upgrade() == []
    assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == [
        version for version, _, _ in migrations.MIGRATIONS
    ]


def test_upgrade_from_an_empty_database(ctx):
    db.drop_tables(list(reversed(ALL_MODELS)), safe=True, cascade=isinstance(db.obj, PostgresqlDatabase))
    assert migrations.current_version() == 0
    applied = migrations.upgrade()
    assert applied == [f"{version}: {name}" for version, name, _ in migrations.MIGRATIONS]
    assert migrations.current_version() == migrations.MIGRATIONS[-1][0]
    for model in ALL_MODELS:
        assert model.table_exists(), model.__name__
    assert migrations.upgrade() == []


def test_migration_versions_are_increasing():
    versions = [version for version, _, _ in migrations.MIGRATIONS]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


def test_migration_6_keys_existing_wechat_users_by_the_configured_appid(ctx, app, user):
    """A release-5 database: WeChat users unique by openid, factors naming the bare openid."""
    from playhouse.migrate import SchemaMigrator, migrate

    from portal import crypto
    from portal.models import Factor, WeChatUser

    table = WeChatUser._meta.table_name
    migrator = SchemaMigrator.from_database(db.obj)
    migrate(migrator.drop_index(table, f"{table}_appid_openid"), migrator.drop_column(table, "appid"))
    migrate(migrator.add_index(table, ("openid",), unique=True))
    SchemaVersion.delete().where(SchemaVersion.version == 6).execute()
    db.execute_sql(
        f'INSERT INTO "{table}" (openid, unionid, session_key, created_at, last_login_at) '
        "VALUES ('o-old', '', '', '2026-01-01', '2026-01-01')"
    )
    Factor.create(user=user, method="wechat", external_id="o-old", secret=crypto.encrypt("JBSWY3DPEHPK3PXP"))
    app.config["WECHAT_APPID"] = "wxold0000000000001"

    assert migrations.upgrade() == [f"6: {migrations.MIGRATIONS[5][1]}"]

    wx_user = WeChatUser.get(WeChatUser.openid == "o-old")
    assert wx_user.appid == "wxold0000000000001"
    assert Factor.get(Factor.method == "wechat").external_id == "wxold0000000000001:o-old" == wx_user.binding_id
    # The same openid of another mini-program is another person now.
    WeChatUser.create(appid="wxnew0000000000002", openid="o-old")
    assert WeChatUser.select().where(WeChatUser.openid == "o-old").count() == 2


def test_migration_13_widens_device_keys_and_keeps_ed25519_devices(ctx, user):
    """A release-12 database: Device.public_key VARCHAR(64), no algorithm, no push subscriptions."""
    import base64

    import peewee
    from playhouse.migrate import SchemaMigrator, migrate

    from portal.models import Device, PushSubscription

    table = Device._meta.table_name
    PushSubscription.drop_table()
    migrator = SchemaMigrator.from_database(db.obj)
    migrate(migrator.drop_column(table, "algorithm"))
    if isinstance(db.obj, PostgresqlDatabase):
        migrate(migrator.alter_column_type(table, "public_key", peewee.CharField(max_length=64)))
    SchemaVersion.delete().where(SchemaVersion.version == 13).execute()
    old_key = base64.b64encode(b"k" * 32).decode()
    db.execute_sql(
        f'INSERT INTO "{table}" (device_id, user_id, public_key, name, platform, created_at, last_seen_at) '
        "VALUES ('dev_old', %s, %s, '', '', '2026-01-01', '2026-01-01')".replace("%s", db.obj.param),
        (user.id, old_key),
    )

    assert migrations.upgrade() == [f"13: {migrations.MIGRATIONS[12][1]}"]

    old = Device.get(Device.device_id == "dev_old")
    assert (old.algorithm, old.public_key) == ("Ed25519", old_key)
    p256 = base64.b64encode(b"\x04" + b"p" * 64).decode()
    assert len(p256) == 88
    Device.create(device_id="dev_new", user=user, public_key=p256, algorithm="ES256")  # fits on PostgreSQL too
    assert Device.get(Device.device_id == "dev_new").public_key == p256
    assert PushSubscription.table_exists()
    columns = {c.name: c for c in db.get_columns(table)}
    assert "algorithm" in columns


def test_migration_19_turns_every_admin_into_the_admin_role(ctx, user):
    """A release-18 database: User.is_admin, no role."""
    import peewee
    from playhouse.migrate import SchemaMigrator, migrate

    from portal.models import User

    table = User._meta.table_name
    migrator = SchemaMigrator.from_database(db.obj)
    migrate(migrator.add_column(table, "is_admin", peewee.BooleanField(null=True)))
    SchemaVersion.delete().where(SchemaVersion.version == 19).execute()
    User.insert(account="boss@mail.xamd.edu.cn", password_hash="").execute()  # role: still the model's column
    db.execute_sql(f"UPDATE \"{table}\" SET is_admin = %s WHERE account = 'boss@mail.xamd.edu.cn'" % db.param, (True,))
    migrate(migrator.drop_column(table, "role"))

    assert migrations.upgrade() == [f"19: {dict((v, n) for v, n, _ in migrations.MIGRATIONS)[19]}"]

    assert "is_admin" not in {column.name for column in db.get_columns(table)}
    assert User.get(User.account == "boss@mail.xamd.edu.cn").role == "admin"
    assert User.get_by_id(user.id).role == ""
    User.create(account="new@mail.xamd.edu.cn", password_hash="")  # inserts need no is_admin any more


def test_migration_21_adds_the_audit_search_indexes_to_an_older_database(ctx):
    """A release-20 database: audit_event without the composite indexes; 21 adds them, once."""
    from portal.models import AuditEvent

    table = AuditEvent._meta.table_name
    added = {"audit_event_created_at_id", "audit_event_event_created_at_id", "audit_event_outcome_created_at_id"}
    added |= set(migrations.AUDIT_PREFIX_INDEXES)
    for name in added:
        db.execute_sql(f'DROP INDEX "{name}"')
    assert not added & {index.name for index in db.get_indexes(table)}
    SchemaVersion.delete().where(SchemaVersion.version == 21).execute()
    assert migrations.upgrade() == ["21: 审计日志 search: composite indexes for its filters, in page order"]
    indexes = {index.name: index for index in db.get_indexes(table)}
    assert added <= set(indexes)
    assert indexes["audit_event_account_prefix"].columns[-2:] == ["created_at", "id"]
    if isinstance(db.obj, PostgresqlDatabase):  # byte order, so that a prefix range can use it
        assert 'COLLATE "C"' in indexes["audit_event_ip_prefix"].sql
    assert migrations.upgrade() == []
