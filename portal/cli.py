"""`flask --app wsgi …` commands: thin wrappers over the services."""

from __future__ import annotations

import shutil
import signal
import sys
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from portal import directory, migrations, vapid
from portal.db import db
from portal.services import accounts, audit, backup, demo, demo_large, doctor, housekeeping, outbox, policy, roles
from portal.services.errors import DomainError

user_cli = AppGroup("user", help="Manage mail accounts.")
policy_cli = AppGroup("policy", help="Show or change the 2FA policy.")
push_cli = AppGroup("push", help="Web Push to the 邮箱安全 App.")


def init_app(app: Flask) -> None:
    app.cli.add_command(init_db)
    app.cli.add_command(doctor_command)
    app.cli.add_command(demo_command)
    app.cli.add_command(demo_large_command)
    app.cli.add_command(user_cli)
    app.cli.add_command(policy_cli)
    app.cli.add_command(push_cli)
    app.cli.add_command(wechat_stub)
    app.cli.add_command(dev_ldap)
    app.cli.add_command(audit_command)
    app.cli.add_command(prune_command)
    app.cli.add_command(backup_command)
    app.cli.add_command(send_mail_command)
    from portal.token_cli import token_cli  # imported here: it builds on this module's _run

    app.cli.add_command(token_cli)


def _run(action):
    """Run a service call in a connection; domain errors become a clean exit 1."""
    try:
        with db.connection_context():
            return action()
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


def _password(given: str | None) -> str:
    if given is not None:
        return given
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\n")


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the database schema (idempotent); warn if the data key cannot read it."""
    applied = _run(migrations.upgrade)
    click.echo("\n".join(f"applied {name}" for name in applied) or "schema is up to date")
    _run(doctor.remember_key)
    report = _run(doctor.check)
    if not report.ok:
        for line in report.lines():
            click.echo(f"warning: {line}", err=True)


@click.command("doctor")
@with_appcontext
def doctor_command() -> None:
    """Check that PORTAL_DATA_KEY reads every stored secret (exit 1 if not)."""
    report = _run(doctor.check)
    for line in report.lines():
        click.echo(line, err=not report.ok)
    if not report.ok:
        sys.exit(1)


@click.command("demo")
@with_appcontext
@click.option("--history/--no-history", default=True, help="also 30 days of made-up traffic for the reports (once)")
def demo_command(history: bool) -> None:
    """Seed the demo accounts (idempotent) and print them."""
    _run(migrations.upgrade)
    for line in _run(lambda: demo.seed(history)):
        click.echo(line)


@click.command("demo-large")
@with_appcontext
@click.option("--users", type=click.IntRange(1, 1_000_000), default=50_000, show_default=True)
@click.option("--events", type=click.IntRange(0, 100_000_000), default=2_000_000, show_default=True)
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True)
def demo_large_command(users: int, events: int, days: int) -> None:
    """Seed a large database for benchmarks: accounts, factors and audit events over the last days."""
    _run(migrations.upgrade)
    started = time.monotonic()
    counts = _run(lambda: demo_large.seed(users, events, days=days, say=click.echo))
    click.echo(", ".join(f"{kind}: {n}" for kind, n in counts.items()) + f" ({time.monotonic() - started:.0f} s)")


@user_cli.command("create")
@click.argument("account")
@click.option("--name", default="")
@click.option("--admin", is_flag=True)
@click.option("--password", help="read from stdin when omitted")
def user_create(account: str, name: str, admin: bool, password: str | None) -> None:
    """Create an account."""
    user = _run(lambda: accounts.create(account, _password(password), name=name, admin=admin))
    click.echo(f"created {user.account}{' (admin)' if user.is_staff else ''}")
    if directory.holds_passwords():
        click.echo("note: this account has a local password, used instead of the directory's (break-glass)")


@user_cli.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
def user_import(file) -> None:
    """Import accounts from CSV (account,name,password[,admin]); all rows or none."""
    try:
        text = file.read()
    except UnicodeDecodeError as exc:  # e.g. a CSV saved by Excel as GBK
        raise click.ClickException(f"{file.name}: not UTF-8 text; save the CSV as UTF-8 and import again") from exc
    users = _run(lambda: accounts.import_csv(text, directory.holds_passwords()))
    click.echo(f"imported {len(users)} account(s)")


@user_cli.command("list")
def user_list() -> None:
    """List accounts with their bound methods."""
    for user, methods in _run(accounts.listing):
        flags = [f for f, on in ((user.role, user.is_staff), ("disabled", user.disabled)) if on]
        click.echo(f"{user.account}\t{user.name}\t{','.join(methods) or '-'}\t{','.join(flags)}")


@user_cli.command("set-password")
@click.argument("account")
@click.option("--password", help="read from stdin when omitted")
def user_set_password(account: str, password: str | None) -> None:
    """Set a new password; ends sessions and trusted devices."""
    _run(lambda: accounts.set_password(account, _password(password)))
    click.echo(f"password changed for {accounts.normalize(account)}")


@user_cli.command("role")
@click.argument("account")
@click.argument("role", type=click.Choice([*roles.ROLES, "none"]))
@click.option("--reason", default="", help="why (kept in the audit log)")
def user_role(account: str, role: str, reason: str) -> None:
    """Give a console role: admin (everything), helpdesk (user support), auditor (reports, audit; read-only),
    or none; directory users too, before their first login."""
    role = "" if role == "none" else role
    user = _run(lambda: accounts.set_role(account, role, find=directory.account_for_admin, reason=reason))
    click.echo(f"{user.account}: role {user.role or 'none'}")


@user_cli.command("set-admin")
@click.argument("account")
@click.argument("state", type=click.Choice(["on", "off"]))
def user_set_admin(account: str, state: str) -> None:
    """The same as `user role ACCOUNT admin|none` (kept for existing scripts)."""
    user = _run(lambda: accounts.set_role(account, "admin" if state == "on" else "", find=directory.account_for_admin))
    click.echo(f"{user.account}: admin {'on' if user.role == 'admin' else 'off'}")


@user_cli.command("reset-2fa")
@click.argument("account")
@click.option("--reason", required=True, help="why (kept in the audit log)")
def user_reset_2fa(account: str, reason: str) -> None:
    """Remove every second factor of an account (lost phone)."""
    removed = _run(lambda: accounts.reset_2fa(account, reason))
    click.echo(f"removed {removed} factor(s) of {accounts.normalize(account)}")


@user_cli.command("unlock")
@click.argument("account")
@click.option("--reason", default="", help="why (kept in the audit log)")
def user_unlock(account: str, reason: str) -> None:
    """Clear failed-attempt lockouts of an account."""
    _run(lambda: accounts.unlock(account, reason=reason))
    click.echo(f"unlocked {accounts.normalize(account)}")


@user_cli.command("disable")
@click.argument("account")
@click.option("--reason", default="", help="why (kept in the audit log)")
def user_disable(account: str, reason: str) -> None:
    """Disable an account and end its sessions."""
    _run(lambda: accounts.set_disabled(account, True, reason=reason))
    click.echo(f"disabled {accounts.normalize(account)}")


@user_cli.command("enable")
@click.argument("account")
@click.option("--reason", default="", help="why (kept in the audit log)")
def user_enable(account: str, reason: str) -> None:
    """Enable a disabled account."""
    _run(lambda: accounts.set_disabled(account, False, reason=reason))
    click.echo(f"enabled {accounts.normalize(account)}")


@user_cli.command("policy")
@click.argument("account")
@click.option("--methods", help="extra methods this user may bind, e.g. totp,email ('' for none)")
@click.option("--force/--no-force", default=None, help="listed for forced binding")
def user_policy(account: str, methods: str | None, force: bool | None) -> None:
    """Per-user policy."""
    user = _run(lambda: accounts.set_policy(account, methods=methods, force=force))
    click.echo(f"{user.account}: extra methods={user.extra_methods or '-'} force_2fa={user.force_2fa}")


@policy_cli.command("show")
def policy_show() -> None:
    """Print the global policy."""
    for key in policy.KEYS:
        click.echo(f"{key}={_run(lambda key=key: policy.get(key))}")


@policy_cli.command("set")
@click.argument("key", type=click.Choice(list(policy.KEYS)))
@click.argument("value")
def policy_set(key: str, value: str) -> None:
    """Set force_2fa (off|all|listed), force_2fa_deadline (YYYY-MM-DD, Beijing time; '' for none),
    force_2fa_snoozes (0-20: times a forced user may choose 稍后绑定), enabled_methods / admin_methods (e.g.
    app,wechat,totp), mail_requires_app_password (on|off), trusted_networks (CIDRs whose logins skip the second
    step, e.g. 10.0.0.0/8; '' for none), campus_networks ('10.0.0.0/8 校园网; 10.20.0.0/16 图书馆': places on
    登录记录), risk_step_up (on|off), trusted_device_days (1-90), lockout_account_failures (3-50; at most 100
    failures per account per hour), lockout_ip_failures (at least the account's), lockout_window_minutes (5-60),
    step_up_minutes (1-60) or support_contact (text). Audited as policy_changed (old -> new)."""
    _run(lambda: policy.set_value(key, value))
    click.echo(f"{key}={_run(lambda: policy.get(key))}")


@push_cli.command("keys")
def push_keys() -> None:
    """Make a new VAPID key pair: the PORTAL_VAPID_PRIVATE_KEY line to configure, and its public key."""
    private = vapid.new_private_key()
    click.echo(f"PORTAL_VAPID_PRIVATE_KEY={private}")
    click.echo(f"# VAPID public key (the App reads it from /api/app/v1/push-key): {vapid.public_key(private)}")


@click.command("wechat-stub")
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True)
def wechat_stub(host: str, port: int) -> None:
    """Serve the local stand-in for the WeChat API (development and tests)."""
    from werkzeug.serving import run_simple

    from wechat_backend.stub import create_stub_app

    config = current_app.config
    stub = create_stub_app(str(config["WECHAT_APPID"]), str(config["WECHAT_SECRET"]))
    click.echo(f"WeChat API stub on http://{host}:{port}/ (appid {config['WECHAT_APPID']})")
    run_simple(host, port, stub, threaded=True)


DEV_LDAP_PEOPLE = (  # (uid, mail, name): directory users only (no local password), to try the LDAP path
    ("wangwu", "wangwu@mail.xamd.edu.cn", "王五"),
    ("zhaoliu", "zhaoliu@mail.xamd.edu.cn", "赵六"),
)
DEV_LDAP_PASSWORD = "Ldap-2fa-2026"


@click.command("dev-ldap")
@click.option("--env-file", type=click.Path(dir_okay=False), help="also write the PORTAL_* settings here")
@with_appcontext
def dev_ldap(env_file: str | None) -> None:
    """Run a throw-away OpenLDAP (Debian's slapd) with demo people until Ctrl-C (development only)."""
    from pathlib import Path

    from portal.directory.dev_slapd import Person, Slapd

    if env_file:
        Path(env_file).unlink(missing_ok=True)
    workdir = Path(current_app.instance_path) / "dev-ldap"
    shutil.rmtree(workdir, ignore_errors=True)
    people = [Person(uid, mail, DEV_LDAP_PASSWORD, name) for uid, mail, name in DEV_LDAP_PEOPLE]
    server = Slapd(workdir, people).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `make run-ldap` stops us with TERM: clean up
    settings = "\n".join(f"PORTAL_{key}={value}" for key, value in server.settings().items()) + "\n"
    if env_file:
        Path(env_file).write_text(settings)
    click.echo(f"slapd on {server.ldap_url} (StartTLS) and {server.ldaps_url}; CA {server.ca_file}")
    click.echo(
        f"directory users (password {DEV_LDAP_PASSWORD}): " + ", ".join(f"{u} / {m}" for u, m, _ in DEV_LDAP_PEOPLE)
    )
    click.echo("portal settings:\n" + settings)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.remove()


@click.command("audit")
@with_appcontext
@click.option("--account", help="only this account")
@click.option("--outcome", help="only this outcome, e.g. fail, locked, not_me (不是本人操作)")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def audit_command(account: str | None, outcome: str | None, limit: int) -> None:
    """Show the newest audit events (time UTC, account, event, method, outcome, IP, detail)."""
    for event in _run(lambda: audit.recent(limit, account=account, outcome=outcome)):
        click.echo(
            f"{event.created_at:%Y-%m-%d %H:%M:%S}\t{event.account or '-'}\t{event.event}\t"
            f"{event.method or '-'}\t{event.outcome}\t{event.ip or '-'}\t{event.detail}"
        )


@click.command("prune")
@with_appcontext
@click.option("--audit-days", type=click.IntRange(30, None), help="also delete audit events older than this")
def prune_command(audit_days: int | None) -> None:
    """Delete expired sessions, tickets, codes, counters and tokens (run daily)."""
    for kind, count in _run(lambda: housekeeping.prune(audit_days=audit_days)).items():
        click.echo(f"{kind}: {count} deleted")


@click.command("backup")
@with_appcontext
@click.argument("file", type=click.Path(dir_okay=False))
def backup_command(file: str) -> None:
    """Copy the SQLite database to FILE while the portal runs (PostgreSQL: use pg_dump)."""
    size = _run(lambda: backup.sqlite_backup(file))
    click.echo(f"backed up to {file} ({size} bytes)")


@click.command("send-mail")
@with_appcontext
@click.option("--once", is_flag=True, help="one pass over the due mails, then exit")
def send_mail_command(once: bool) -> None:
    """Send queued mails (security notices); without --once, keep doing so (a process of its own)."""
    worker = outbox.Worker(current_app._get_current_object())
    while True:
        sent = worker.run_once()
        if sent or once:
            click.echo(f"{sent} mail(s) sent")
        if once:
            return
        time.sleep(outbox.POLL_SECONDS)
