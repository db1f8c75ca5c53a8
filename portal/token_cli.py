"""`flask --app wsgi token …`: import 动态口令 seed files, list, assign and unassign tokens."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from portal.cli import _run
from portal.services import hardware_tokens

token_cli = AppGroup("token", help="动态口令: hardware OTP tokens (import seed files, assign to accounts).")


@token_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["pskc", "csv"]), help="default: csv for *.csv, else pskc")
@click.option("--key", "key_hex", help="pre-shared key (hex) of an encrypted PSKC file")
@click.option("--password", help="password of a PBKDF2-encrypted PSKC file")
@click.option("--dry-run", is_flag=True, help="check and report, store nothing")
def token_import(file: str, fmt: str | None, key_hex: str | None, password: str | None, dry_run: bool) -> None:
    """Import tokens from PSKC (RFC 6030) or CSV serial,secret,type,digits,period,counter (secret base32).

    One line per token, then a summary. Valid new tokens are stored together even when other entries
    are invalid (serials already present are skipped); the exit status is 1 if any entry was invalid.
    """
    fmt = fmt or ("csv" if file.lower().endswith(".csv") else "pskc")
    report = _run(lambda: hardware_tokens.import_file(file, fmt, key_hex=key_hex, password=password, dry_run=dry_run))
    verb = "would import" if dry_run else "imported"
    for outcome in report.outcomes:
        name = outcome.serial or "-"
        if outcome.where and outcome.status == "invalid":
            name = f"{name} ({outcome.where})"
        status = verb if outcome.status == "imported" else outcome.status
        click.echo(f"{name}\t{status}{': ' + outcome.reason if outcome.reason else ''}")
    totals = report.totals
    click.echo(
        f"{verb} {totals['imported']}, skipped {totals['skipped']}, invalid {totals['invalid']}"
        + (" (dry run: nothing stored)" if dry_run else "")
    )
    if totals["invalid"]:
        sys.exit(1)


@token_cli.command("list")
@click.option("--unassigned", is_flag=True, help="only tokens not assigned to an account")
def token_list(unassigned: bool) -> None:
    """List tokens: serial, kind, digits, assigned account or -, last used (UTC) or -."""
    for token in _run(lambda: hardware_tokens.listing(unassigned_only=unassigned)):
        account = token.user.account if token.user_id else "-"
        used = f"{token.last_used_at:%Y-%m-%d %H:%M:%S}" if token.last_used_at else "-"
        click.echo(f"{token.serial}\t{token.kind}\t{token.digits}\t{account}\t{used}")


@token_cli.command("assign")
@click.argument("serial")
@click.argument("account")
def token_assign(serial: str, account: str) -> None:
    """Assign a token to an account (refused while it is assigned to another one)."""
    token = _run(lambda: hardware_tokens.assign(serial, account))
    click.echo(f"assigned {token.serial} to {token.user.account}")


@token_cli.command("unassign")
@click.argument("serial")
def token_unassign(serial: str) -> None:
    """Take a token back; the account's 动态口令 factor on it is removed and its sessions end."""
    user = _run(lambda: hardware_tokens.unassign(serial))
    click.echo(f"unassigned {serial.strip()} from {user.account}")
