"""`flask --app wsgi …` commands, run through Flask's CLI test runner."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from portal import crypto, migrations
from portal.db import db
from portal.models import AuditEvent, Factor, LoginSession, SchemaVersion, User
from portal.services import accounts, demo, factors, passwords, policy, sessions, throttle
from portal.services.client import Client

GOOD_CSV = (
    "account,name,password,admin\n"
    "bob@mail.xamd.edu.cn,Bob,Bob-password-1,\n"  # line 2
    "carol@mail.xamd.edu.cn,卡罗,Carol-pass-1,1\n"  # line 3
)


@contextmanager
def database(app):
    with app.app_context(), db.connection_context():
        yield


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(args=list(args), input=input)

    return invoke


@pytest.fixture
def alice(app, cli):
    result = cli("user", "create", "Alice@Mail.xamd.edu.cn", "--name", "Alice", "--password", "Alice-password-1")
    assert result.exit_code == 0, result.output
    return "alice@mail.xamd.edu.cn"


def test_init_db_is_idempotent(app, cli):
    result = cli("init-db")
    assert result.exit_code == 0, result.output
    assert "schema is up to date" in result.output
    with database(app):
        db.drop_tables([SchemaVersion])
    result = cli("init-db")
    assert result.exit_code == 0, result.output
    assert "applied 1: initial schema" in result.output
    with database(app):
        assert migrations.current_version() == migrations.MIGRATIONS[-1][0]
    assert "schema is up to date" in cli("init-db").output


def test_user_create_with_password_option(app, alice):
    with database(app):
        user = User.by_account(alice)
        assert user.name == "Alice"
        assert user.role == ""
        assert user.password_hash.startswith("$argon2id$")
        assert passwords.verify(user.password_hash, "Alice-password-1")


def test_user_create_admin_with_password_from_stdin(app, cli):
    result = cli("user", "create", "root@mail.xamd.edu.cn", "--admin", input="From-stdin-pass-1\n")
    assert result.exit_code == 0, result.output
    assert "created root@mail.xamd.edu.cn (admin)" in result.output
    with database(app):
        user = User.by_account("root@mail.xamd.edu.cn")
        assert user.role == "admin"
        assert passwords.verify(user.password_hash, "From-stdin-pass-1")


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["not-an-address", "--password", "Long-enough-1"], None),
        (["bob@mail.xamd.edu.cn", "--password", "short"], None),
        (["bob@mail.xamd.edu.cn"], "short\n"),
        (["bob@mail.xamd.edu.cn"], ""),
    ],
)
def test_user_create_errors_exit_1(app, cli, args, stdin):
    result = cli("user", "create", *args, input=stdin)
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert "Traceback" not in result.output
    with database(app):
        assert User.select().count() == 0


def test_user_create_duplicate_exits_1(app, cli, alice):
    result = cli("user", "create", "ALICE@mail.xamd.edu.cn", "--password", "Another-pass-1")
    assert result.exit_code == 1
    assert "账号已存在" in result.output
    with database(app):
        assert User.select().count() == 1


def test_user_import_good_file(app, cli, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("\ufeff" + GOOD_CSV, encoding="utf-8")  # Excel writes a BOM
    result = cli("user", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 account(s)" in result.output
    with database(app):
        assert [u.account for u in User.select().order_by(User.account)] == [
            "bob@mail.xamd.edu.cn",
            "carol@mail.xamd.edu.cn",
        ]
        assert User.by_account("carol@mail.xamd.edu.cn").role == "admin"
        assert User.by_account("carol@mail.xamd.edu.cn").name == "卡罗"


def test_user_import_bad_file_imports_nothing(app, cli, tmp_path, alice):
    path = tmp_path / "users.csv"
    path.write_text(
        GOOD_CSV + "broken-address,X,Xx-password-1,\nalice@mail.xamd.edu.cn,A,Alice-pass-2,\n", encoding="utf-8"
    )
    result = cli("user", "import", str(path))
    assert result.exit_code != 0
    assert "line 4" in result.output and "line 5" in result.output
    with database(app):
        assert [u.account for u in User.select()] == [alice]


def test_user_import_missing_columns(app, cli, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("email,name\nbob@mail.xamd.edu.cn,Bob\n", encoding="utf-8")
    result = cli("user", "import", str(path))
    assert result.exit_code != 0
    assert "missing column" in result.output
    with database(app):
        assert User.select().count() == 0


def test_user_import_non_utf8_file_is_a_clean_error(app, cli, tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes("account,name,password\nbob@mail.xamd.edu.cn,鲍勃,Bob-password-1\n".encode("gbk"))
    result = cli("user", "import", str(path))
    assert result.exit_code == 1
    assert "UTF-8" in result.output
    assert not isinstance(result.exception, UnicodeDecodeError)
    with database(app):
        assert User.select().count() == 0


def test_user_import_missing_file(app, cli, tmp_path):
    result = cli("user", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2


def test_user_list(app, cli, alice):
    cli("user", "create", "boss@mail.xamd.edu.cn", "--admin", "--password", "Boss-password-1")
    with database(app):
        Factor.create(user=User.by_account(alice), method="totp", secret=crypto.encrypt("JBSWY3DPEHPK3PXP"))
    cli("user", "disable", "boss@mail.xamd.edu.cn")
    result = cli("user", "list")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "alice@mail.xamd.edu.cn\tAlice\ttotp\t",
        "boss@mail.xamd.edu.cn\t\t-\tadmin,disabled",
    ]


def test_user_set_password(app, cli, alice):
    with database(app):
        token = sessions.start(User.by_account(alice), sessions.FULL, Client())
    result = cli("user", "set-password", "ALICE@mail.xamd.edu.cn", "--password", "Brand-new-pass-1")
    assert result.exit_code == 0, result.output
    assert f"password changed for {alice}" in result.output
    result = cli("user", "set-password", alice, input="Via-stdin-pass-1\n")
    assert result.exit_code == 0, result.output
    with database(app):
        user = User.by_account(alice)
        assert passwords.verify(user.password_hash, "Via-stdin-pass-1")
        assert LoginSession.get(LoginSession.user == user).end_reason == "password_changed"
        assert sessions.resolve(token) is None


def test_user_set_password_errors(app, cli, alice):
    assert cli("user", "set-password", "nobody@mail.xamd.edu.cn", "--password", "Long-enough-1").exit_code == 1
    assert cli("user", "set-password", alice, "--password", "short").exit_code == 1
    with database(app):
        assert passwords.verify(User.by_account(alice).password_hash, "Alice-password-1")


def test_user_reset_2fa(app, cli, alice):
    with database(app):
        Factor.create(user=User.by_account(alice), method="totp", secret=crypto.encrypt("JBSWY3DPEHPK3PXP"))
    missing = cli("user", "reset-2fa", alice)
    assert missing.exit_code == 2
    assert "--reason" in missing.output
    blank = cli("user", "reset-2fa", alice, "--reason", "  ")
    assert blank.exit_code == 1
    with database(app):
        assert Factor.select().count() == 1
    result = cli("user", "reset-2fa", alice, "--reason", "lost phone")
    assert result.exit_code == 0, result.output
    assert f"removed 1 factor(s) of {alice}" in result.output
    with database(app):
        assert Factor.select().count() == 0
        assert "lost phone" in AuditEvent.get(AuditEvent.event == "2fa_reset").detail
    assert cli("user", "reset-2fa", "nobody@mail.xamd.edu.cn", "--reason", "x").exit_code == 1


def test_user_unlock(app, cli, alice):
    with database(app):
        for _ in range(int(app.config["THROTTLE_ACCOUNT_FAILURES"])):
            throttle.begin("password", alice, "192.0.2.1")
    result = cli("user", "unlock", "Alice@mail.xamd.edu.cn")
    assert result.exit_code == 0, result.output
    assert f"unlocked {alice}" in result.output
    with database(app):
        assert throttle.failures("password", alice) == 0


def test_user_disable_and_enable(app, cli, alice):
    with database(app):
        token = sessions.start(User.by_account(alice), sessions.FULL, Client())
    result = cli("user", "disable", alice)
    assert result.exit_code == 0, result.output
    with database(app):
        assert User.by_account(alice).disabled is True
        assert sessions.resolve(token) is None
    result = cli("user", "enable", alice)
    assert result.exit_code == 0, result.output
    with database(app):
        assert User.by_account(alice).disabled is False
    assert cli("user", "disable", "nobody@mail.xamd.edu.cn").exit_code == 1


def test_unlock_disable_and_enable_keep_an_optional_reason(app, cli, alice):
    for command in ("unlock", "disable", "enable"):
        assert cli("user", command, alice, "--reason", f"ticket {command}").exit_code == 0
    with database(app):
        for event, command in (("user_unlocked", "unlock"), ("user_disabled", "disable"), ("user_enabled", "enable")):
            detail = AuditEvent.get(AuditEvent.event == event).detail
            assert f"reason: ticket {command}" in detail and "by " not in detail  # the server names nobody


def test_user_policy(app, cli, alice):
    result = cli("user", "policy", alice, "--methods", "totp", "--force")
    assert result.exit_code == 0, result.output
    assert "extra methods=totp force_2fa=True" in result.output
    with database(app):
        user = User.by_account(alice)
        assert (user.extra_methods, user.force_2fa) == ("totp", True)
    assert cli("user", "policy", alice, "--methods", "fax").exit_code == 1


def test_policy_show_and_set(app, cli):
    result = cli("policy", "show")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "force_2fa=off",
        "enabled_methods=app,wechat",
        "mail_requires_app_password=off",
        "trusted_networks=",
        "admin_methods=",
        "campus_networks=",
        "risk_step_up=off",
        "force_2fa_deadline=",
        "force_2fa_snoozes=0",
        "trusted_device_days=30",
        "lockout_account_failures=10",
        "lockout_ip_failures=30",
        "lockout_window_minutes=15",
        "step_up_minutes=10",
        "support_contact=网络信息化中心,电话 85603000 转 8012",
    ]
    result = cli("policy", "set", "force_2fa", "all")
    assert (result.exit_code, result.output.strip()) == (0, "force_2fa=all")
    result = cli("policy", "set", "enabled_methods", "app, wechat, totp")
    assert (result.exit_code, result.output.strip()) == (0, "enabled_methods=app,wechat,totp")
    assert cli("policy", "set", "force_2fa", "sometimes").exit_code == 1
    assert cli("policy", "set", "enabled_methods", "fax").exit_code == 1
    assert cli("policy", "set", "colour", "blue").exit_code == 2
    result = cli("policy", "set", "mail_requires_app_password", "on")
    assert (result.exit_code, result.output.strip()) == (0, "mail_requires_app_password=on")
    assert cli("policy", "set", "mail_requires_app_password", "yes").exit_code == 1
    result = cli("policy", "set", "lockout_window_minutes", "30")
    assert (result.exit_code, result.output.strip()) == (0, "lockout_window_minutes=30")
    result = cli("policy", "set", "lockout_account_failures", "60")  # beyond 3-50
    assert result.exit_code == 1 and "3 到 50" in result.output
    result = cli("policy", "set", "lockout_ip_failures", "5")  # fewer than the account's 10
    assert result.exit_code == 1 and "不能少于" in result.output
    result = cli("policy", "set", "force_2fa_snoozes", "3")
    assert (result.exit_code, result.output.strip()) == (0, "force_2fa_snoozes=3")
    with database(app):
        assert policy.get("force_2fa") == "all"
        details = [e.detail for e in AuditEvent.select().where(AuditEvent.event == "policy_changed")]
        assert "force_2fa: off -> all" in details  # a command names nobody
        assert "lockout_window_minutes: 15 -> 30" in details and len(details) == 5
        assert policy.get("enabled_methods") == "app,wechat,totp"
        assert policy.get("mail_requires_app_password") == "on"


def test_policy_trusted_networks(app, cli):
    result = cli("policy", "set", "trusted_networks", "10.0.0.0/8, 192.168.1.0/24,2001:db8::/48, 172.16.5.9")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "trusted_networks=10.0.0.0/8,192.168.1.0/24,2001:db8::/48,172.16.5.9/32"
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "campus", "0.0.0.0/0", "10.0.0.0/7", "::/0"):
        result = cli("policy", "set", "trusted_networks", bad)
        assert result.exit_code == 1, (bad, result.output)
    with database(app):
        assert policy.get("trusted_networks").startswith("10.0.0.0/8,")  # a refused value changes nothing
    result = cli("policy", "set", "trusted_networks", "")
    assert (result.exit_code, result.output.strip()) == (0, "trusted_networks=")
    with database(app):
        assert not policy.in_trusted_network("10.1.2.3")


def test_demo_is_idempotent(app, cli):
    first = cli("demo")
    assert first.exit_code == 0, first.output
    second = cli("demo")
    assert second.exit_code == 0, second.output
    assert first.output == second.output
    for account, *_ in demo.DEMO_ACCOUNTS:
        assert account in first.output
    assert demo.DEMO_PASSWORD in first.output
    with database(app):
        people = {u.account for u in User.select()}
        assert {a for a, *_ in demo.DEMO_ACCOUNTS} <= people
        assert len(people) == len(demo.DEMO_ACCOUNTS) + demo.HISTORY_USERS  # the history came once
        assert AuditEvent.select().where(AuditEvent.account.endswith("@mail.xamd.edu.cn")).count() >= 5000
        lisi = User.by_account("lisi@mail.xamd.edu.cn")
        admin = User.by_account("admin@mail.xamd.edu.cn")
        zhang = User.by_account("zhangsan@mail.xamd.edu.cn")
        assert lisi.force_2fa and policy.must_bind(lisi)
        assert admin.role == "admin" and policy.must_bind(admin)
        assert not policy.must_bind(zhang)
        assert "totp" in factors.offered(zhang)
        assert passwords.verify(zhang.password_hash, demo.DEMO_PASSWORD)


def test_demo_keeps_existing_accounts(app, cli):
    with database(app):
        accounts.create("zhangsan@mail.xamd.edu.cn", "Own-password-1")
    assert cli("demo").exit_code == 0
    with database(app):
        assert passwords.verify(User.by_account("zhangsan@mail.xamd.edu.cn").password_hash, "Own-password-1")


def test_audit_lists_not_me_denials_for_admins(app, cli):
    from portal.db import db
    from portal.services import audit

    with app.app_context(), db.connection_context():
        audit.record("app_login_denied", account="victim@mail.xamd.edu.cn", method="app", outcome="not_me")
        audit.record("login_password", account="other@mail.xamd.edu.cn", outcome="fail")
    result = cli("audit", "--outcome", "not_me")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and "victim@mail.xamd.edu.cn" in lines[0] and "app_login_denied" in lines[0]
    assert "other@" in cli("audit", "--account", "OTHER@mail.xamd.edu.cn").output


def test_prune_prints_what_it_deleted(cli):
    result = cli("prune")
    assert result.exit_code == 0, result.output
    assert "login sessions: 0 deleted" in result.output and "audit events" not in result.output
    assert cli("prune", "--audit-days", "5").exit_code == 2  # the audit log is kept at least 30 days
    assert "audit events: 0 deleted" in cli("prune", "--audit-days", "365").output


def test_user_role_gives_and_takes_a_console_role(app, cli, alice):
    result = cli("user", "role", alice, "helpdesk", "--reason", "新同事")
    assert result.exit_code == 0 and f"{alice}: role helpdesk" in result.output
    with database(app):
        assert User.by_account(alice).role == "helpdesk"
    assert "role none" in cli("user", "role", alice, "none").output
    with database(app):
        assert User.by_account(alice).role == ""
    refused = cli("user", "role", alice, "root")
    assert refused.exit_code != 0 and "root" in refused.output
    assert "admin on" in cli("user", "set-admin", alice, "on").output
    with database(app):
        assert User.by_account(alice).role == "admin"
