"""The Dovecot checkpassword program, run as Dovecot runs it: a process reading fd 3, then exec'ing the reply."""

from __future__ import annotations

import os
import sys

import pytest

from portal.models import AppPassword, User
from portal.services import app_passwords
from tests.checkpassword_program import DOVECOT_VSZ_LIMIT, REPLY, ROOT, WRAPPER, replied, request, run, spawn
from tests.conftest import PASSWORD
from tests.helpers import database_locked


@pytest.fixture
def app_password(user, client) -> tuple[AppPassword, str]:
    return app_passwords.create(user, "Thunderbird", client)


def test_app_password_of_a_2fa_user_execs_the_reply_with_user(app_config, user, totp_secret, app_password):
    row, plaintext = app_password
    process = run(app_config, request(user.account.upper(), plaintext), env={"SERVICE": "submission"})
    assert replied(process) == {"USER": user.account, "AUTHORIZED": None}
    row = AppPassword.get_by_id(row.id)
    assert (row.last_protocol, row.last_ip) == ("smtp", "192.0.2.44")


def test_main_password_of_a_2fa_user_is_refused(app_config, user, totp_secret):
    process = run(app_config, request(user.account, PASSWORD))
    assert process.returncode == 1 and process.stdout == b""


def test_main_password_without_a_factor_works(app_config, user):
    assert replied(run(app_config, request(user.account, PASSWORD), env={"SERVICE": "pop3"}))["USER"] == user.account


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
def test_refusals_exit_1(app_config, user, data):
    assert run(app_config, data).returncode == 1


def test_deleted_app_password_stops_working_at_once(app_config, user, totp_secret, app_password, client):
    row, plaintext = app_password
    assert run(app_config, request(user.account, plaintext)).returncode == 0
    app_passwords.delete(user, row.id, client)
    assert run(app_config, request(user.account, plaintext)).returncode == 1


def test_userdb_lookup_is_acknowledged_with_authorized_2(app_config, user):
    process = run(app_config, request(user.account, ""), env={"AUTHORIZED": "1"})
    assert replied(process) == {"USER": user.account, "AUTHORIZED": "2"}
    unknown = run(app_config, request("ghost@mail.xamd.edu.cn", ""), env={"AUTHORIZED": "1"})
    assert unknown.returncode == 3


@pytest.mark.parametrize("env", [{"MASTER_USER": "admin"}, {"AUTHORIZED": "1", "CREDENTIALS_LOOKUP": "1"}])
def test_master_and_credentials_lookups_are_refused(app_config, user, env):
    assert run(app_config, request(user.account, PASSWORD), env=env).returncode == 1


def test_database_down_is_a_temporary_failure(app_config, user):
    down = dict(app_config, DATABASE_URL="postgresql://portal@127.0.0.1:9/nothing-listens-here")
    process = run(down, request(user.account, PASSWORD))
    assert process.returncode == 111 and b"internal error" in process.stderr


def test_a_locked_database_is_a_temporary_failure_within_the_timeout(app_config, user):
    with database_locked(app_config["DATABASE_URL"]):
        process = run(dict(app_config, DATABASE_TIMEOUT=1), request(user.account, PASSWORD))
    assert process.returncode == 111, process.stderr.decode()  # Dovecot: "temporary failure", not "wrong"


def test_it_fits_in_the_address_space_dovecot_gives_it(app_config, user, totp_secret, app_password):
    # argon2 needs 64 MiB and four threads on top of the app; a failed allocation used to be reported
    # as a wrong password, now and then, to a user who had typed the right one.
    _, plaintext = app_password
    for account, password in [(user.account, plaintext), ("nobody@mail.xamd.edu.cn", PASSWORD)] * 2:
        process = run(app_config, request(account, password), address_space=DOVECOT_VSZ_LIMIT)
        assert process.returncode == (0 if password == plaintext else 1), process.stderr.decode()


def test_a_password_hash_it_cannot_compute_is_a_temporary_failure(app_config, user):
    # A stored hash asking argon2 for 1 GiB cannot be checked under Dovecot's cap: "try again", never "wrong".
    salt_and_digest = "c29tZXNhbHRzb21lc2FsdA$" + "A" * 43
    User.update(password_hash=f"$argon2id$v=19$m=1048576,t=1,p=1${salt_and_digest}").where(User.id == user.id).execute()
    process = run(app_config, request(user.account, PASSWORD), address_space=DOVECOT_VSZ_LIMIT)
    assert process.returncode == 111, process.stderr.decode()
    assert b"Memory allocation error" in process.stderr


def test_without_reply_program_it_is_a_usage_error(app_config, user):
    assert run(app_config, request(user.account, PASSWORD), reply=[]).returncode == 2


def test_settings_from_an_env_file(app_config, user, tmp_path):
    settings = {key: value for key, value in app_config.items() if not isinstance(value, bool)}
    env_file = tmp_path / "checkpassword.env"
    env_file.write_text("# written by the operator\n" + "".join(f"PORTAL_{k}='{v}'\n" for k, v in settings.items()))
    read_end, write_end = os.pipe()
    os.write(write_end, request(user.account, PASSWORD))
    os.close(write_end)
    environment = {"PATH": os.environ["PATH"], "SERVICE": "imap", "PORTAL_ENV_FILE": str(env_file)}
    process = spawn([sys.executable, "-m", "portal.checkpassword", *REPLY], read_end, environment, ROOT)
    assert replied(process)["USER"] == user.account


def test_the_bin_wrapper_runs_from_any_directory(app_config, user, app_password, tmp_path):
    _, plaintext = app_password
    assert os.access(WRAPPER, os.X_OK)
    process = run(app_config, request(user.account, plaintext), program=[str(WRAPPER)], cwd=tmp_path)
    assert replied(process)["USER"] == user.account
