"""The Dovecot checkpassword program, run as Dovecot runs it: a process reading fd 3, asking the running
portal (POST /mail/check over real HTTP), then exec'ing the reply."""

from __future__ import annotations

import os
import time

import peewee
import pytest

from portal.models import AppPassword
from portal.services import app_passwords
from tests.checkpassword_program import (
    PROGRAM,
    REPLY,
    ROOT,
    WRAPPER,
    closed_port_url,
    replied,
    request,
    run,
    serve,
    spawn,
)
from tests.conftest import PASSWORD
from tests.helpers import database_locked

SMALL_ADDRESS_SPACE = 64 * 1024 * 1024  # a quarter of Dovecot's default_vsz_limit: it no longer runs argon2


@pytest.fixture
def portal(app, ctx):
    with serve(app) as url:
        yield url


@pytest.fixture
def app_password(user, client) -> tuple[AppPassword, str]:
    return app_passwords.create(user, "Thunderbird", client)


def test_app_password_of_a_2fa_user_execs_the_reply_with_user(portal, user, totp_secret, app_password):
    row, plaintext = app_password
    process = run(portal, request(user.account.upper(), plaintext), env={"SERVICE": "submission"})
    assert replied(process) == {"USER": user.account, "AUTHORIZED": None}
    row = AppPassword.get_by_id(row.id)
    assert (row.last_protocol, row.last_ip) == ("smtp", "192.0.2.44")


def test_main_password_of_a_2fa_user_is_refused(portal, user, totp_secret):
    process = run(portal, request(user.account, PASSWORD))
    assert process.returncode == 1 and process.stdout == b""
    assert b"refused: app_password_required" in process.stderr  # Dovecot's log says why


def test_main_password_without_a_factor_works(portal, user):
    assert replied(run(portal, request(user.account, PASSWORD), env={"SERVICE": "pop3"}))["USER"] == user.account


def test_a_password_with_any_characters_reaches_the_portal_intact(portal, ctx):
    from portal.services import accounts

    odd = "Pä ss&w=rd%20+中文;"
    user = accounts.create("odd@mail.xamd.edu.cn", odd)
    assert replied(run(portal, request(user.account, odd)))["USER"] == user.account
    assert run(portal, request(user.account, odd[:-1])).returncode == 1


@pytest.mark.parametrize(
    "data",
    [
        request("alice@mail.xamd.edu.cn", "wrong password!"),
        request("nobody@mail.xamd.edu.cn", PASSWORD),
        b"alice@mail.xamd.edu.cn\0\xff\xfe\0\0",
        b"",
    ],
    ids=["wrong", "unknown", "not-utf8", "empty"],
)
def test_refusals_exit_1(portal, user, data):
    assert run(portal, data).returncode == 1


def test_deleted_app_password_stops_working_at_once(portal, user, totp_secret, app_password, client):
    row, plaintext = app_password
    assert run(portal, request(user.account, plaintext)).returncode == 0
    app_passwords.delete(user, row.id, client)
    assert run(portal, request(user.account, plaintext)).returncode == 1


def test_userdb_lookup_is_acknowledged_with_authorized_2(portal, user):
    process = run(portal, request(user.account, ""), env={"AUTHORIZED": "1"})
    assert replied(process) == {"USER": user.account, "AUTHORIZED": "2"}
    unknown = run(portal, request("ghost@mail.xamd.edu.cn", ""), env={"AUTHORIZED": "1"})
    assert unknown.returncode == 3


@pytest.mark.parametrize("env", [{"MASTER_USER": "admin"}, {"AUTHORIZED": "1", "CREDENTIALS_LOOKUP": "1"}])
def test_master_and_credentials_lookups_are_refused(portal, user, env):
    assert run(portal, request(user.account, PASSWORD), env=env).returncode == 1


def test_a_dead_portal_is_a_temporary_failure_at_once(user):
    started = time.monotonic()
    process = run(closed_port_url(), request(user.account, PASSWORD))
    assert process.returncode == 111 and b"the portal did not answer" in process.stderr
    assert time.monotonic() - started < 10


def test_a_portal_whose_database_is_down_is_a_temporary_failure(portal, user, monkeypatch):
    def database_down(*_args, **_kwargs):
        raise peewee.OperationalError("could not connect to server")

    monkeypatch.setattr(app_passwords, "authenticate", database_down)
    process = run(portal, request(user.account, PASSWORD))
    assert process.returncode == 111, process.stderr.decode()  # the portal answered 503


def test_a_slow_portal_is_a_temporary_failure_within_the_timeout(portal, app_config, user):
    with database_locked(app_config["DATABASE_URL"]):  # the portal waits for its database
        started = time.monotonic()
        process = run(portal, request(user.account, PASSWORD), env={"PORTAL_CHECK_TIMEOUT": "1"})
        waited = time.monotonic() - started
    assert process.returncode == 111, process.stderr.decode()  # Dovecot: "temporary failure", not "wrong"
    assert waited < 10


def test_a_password_hash_the_portal_cannot_compute_is_a_temporary_failure(portal, user, hashing_fails):
    assert run(portal, request(user.account, PASSWORD)).returncode == 111


def test_a_wrong_shared_secret_is_a_temporary_failure(app, ctx, user):
    app.config["MAIL_AUTH_SECRET"] = "the-right-secret"
    with serve(app) as url:
        wrong = run(url, request(user.account, PASSWORD), env={"PORTAL_MAIL_AUTH_SECRET": "a-wrong-one"})
        right = run(url, request(user.account, PASSWORD), env={"PORTAL_MAIL_AUTH_SECRET": "the-right-secret"})
    assert wrong.returncode == 111 and b"HTTP 403" in wrong.stderr  # a misconfiguration: never "wrong password"
    assert replied(right)["USER"] == user.account


def test_it_is_small_and_imports_nothing_of_the_portal(portal, user, app_password):
    _, plaintext = app_password
    process = run(portal, request(user.account, plaintext), address_space=SMALL_ADDRESS_SPACE)
    assert replied(process)["USER"] == user.account
    imports = run(portal, request(user.account, plaintext), program=[*PROGRAM[:1], "-X", "importtime", *PROGRAM[1:]])
    imported = {line.rsplit("|", 1)[-1].strip() for line in imports.stderr.decode().splitlines() if "|" in line}
    assert imported and not {name for name in imported if name.split(".")[0] in ("portal", "flask", "peewee")}


def test_without_reply_program_it_is_a_usage_error(portal, user):
    assert run(portal, request(user.account, PASSWORD), reply=[]).returncode == 2


def test_settings_from_an_env_file(portal, user, tmp_path):
    env_file = tmp_path / "checkpassword.env"
    env_file.write_text(f"# written by the operator\nPORTAL_CHECK_URL='{portal}mail/check'\nOTHER=ignored\n")
    read_end, write_end = os.pipe()
    os.write(write_end, request(user.account, PASSWORD))
    os.close(write_end)
    environment = {"PATH": os.environ["PATH"], "SERVICE": "imap", "PORTAL_ENV_FILE": str(env_file)}
    process = spawn([*PROGRAM, *REPLY], read_end, environment, ROOT)
    assert replied(process)["USER"] == user.account


def test_the_bin_wrapper_runs_from_any_directory(portal, user, app_password, tmp_path):
    _, plaintext = app_password
    assert os.access(WRAPPER, os.X_OK)
    process = run(portal, request(user.account, plaintext), program=[str(WRAPPER)], cwd=tmp_path)
    assert replied(process)["USER"] == user.account
