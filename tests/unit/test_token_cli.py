"""`flask --app wsgi token …` (动态口令), run through Flask's CLI test runner."""

from __future__ import annotations

import io

import pskc
import pytest

from portal.models import Factor, HardwareToken, LoginSession, User
from portal.services import sessions
from portal.services.client import Client
from tests.unit.test_cli import database
from tests.unit.test_hardware_tokens import CSV_HEADER, HOTP8_PACKAGE, HOTP_URI, SECRET, TOTP_PACKAGE, pskc_xml

ALICE = "alice@mail.xamd.edu.cn"


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=list(args))


@pytest.fixture
def alice(cli):
    result = cli("user", "create", ALICE, "--password", "Alice-password-1")
    assert result.exit_code == 0, result.output
    return ALICE


@pytest.fixture
def tokens_csv(tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text(CSV_HEADER + f"T-1,{SECRET},totp,6,30,\nH-2,{SECRET},hotp,8,,7\nBAD-3,abc!,totp,6,30,0\n")
    return str(path)


def stored(app) -> list[str]:
    with database(app):
        return [t.serial for t in HardwareToken.select().order_by(HardwareToken.serial)]


def test_import_dry_run_then_for_real(app, cli, tokens_csv):
    dry = cli("token", "import", tokens_csv, "--dry-run")
    assert dry.exit_code == 1  # an invalid row
    assert dry.output.splitlines() == [
        "T-1\twould import",
        "H-2\twould import",
        "BAD-3 (line 4)\tinvalid: bad base32 secret",
        "would import 2, skipped 0, invalid 1 (dry run: nothing stored)",
    ]
    assert stored(app) == []

    real = cli("token", "import", tokens_csv)  # the format follows the .csv name
    assert real.exit_code == 1
    assert real.output.splitlines()[-1] == "imported 2, skipped 0, invalid 1"
    assert stored(app) == ["H-2", "T-1"]

    again = cli("token", "import", tokens_csv, "--format", "csv")
    assert "T-1\tskipped: already present" in again.output
    assert again.output.splitlines()[-1] == "imported 0, skipped 2, invalid 1"


def test_import_of_a_clean_file_exits_0(app, cli, tmp_path):
    path = tmp_path / "tokens.xml"
    path.write_text(pskc_xml(HOTP8_PACKAGE, TOTP_PACKAGE))
    result = cli("token", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "HOTP8-001\timported",
        "TOTP-002\timported",
        "imported 2, skipped 0, invalid 0",
    ]


def test_encrypted_pskc_wrong_key_is_a_clean_error(app, cli, tmp_path):
    document = pskc.PSKC()
    document.add_key(serial="ENC-1", secret=b"12345678901234567890", algorithm=HOTP_URI, response_length=6, counter=0)
    document.encryption.setup_preshared_key(key=bytes.fromhex("ab" * 16))
    out = io.BytesIO()
    document.write(out)
    path = tmp_path / "enc.pskc"
    path.write_bytes(out.getvalue())

    wrong = cli("token", "import", str(path), "--key", "cd" * 16)
    assert wrong.exit_code == 1
    assert "Error: cannot decrypt: wrong key or password" in wrong.output
    assert "Traceback" not in wrong.output and isinstance(wrong.exception, SystemExit)
    assert stored(app) == []

    right = cli("token", "import", str(path), "--format", "pskc", "--key", "AB" * 16)
    assert right.exit_code == 0, right.output
    assert stored(app) == ["ENC-1"]


def test_list_assign_unassign(app, cli, alice, tokens_csv):
    cli("token", "import", tokens_csv)
    assert cli("token", "list").output.splitlines() == ["H-2\thotp\t8\t-\t-", "T-1\ttotp\t6\t-\t-"]

    result = cli("token", "assign", "T-1", "Alice@mail.xamd.edu.cn")
    assert result.exit_code == 0, result.output
    assert result.output == f"assigned T-1 to {alice}\n"
    assert cli("token", "list").output.splitlines()[1] == f"T-1\ttotp\t6\t{alice}\t-"
    assert cli("token", "list", "--unassigned").output.splitlines() == ["H-2\thotp\t8\t-\t-"]

    missing = cli("token", "assign", "T-1", "nobody@mail.xamd.edu.cn")
    assert missing.exit_code == 1 and "账号不存在" in missing.output
    unknown = cli("token", "assign", "NOPE", alice)
    assert unknown.exit_code == 1 and "未找到该序列号的动态口令" in unknown.output
    cli("user", "create", "bob@mail.xamd.edu.cn", "--password", "Bob-password-1")
    taken = cli("token", "assign", "T-1", "bob@mail.xamd.edu.cn")
    assert taken.exit_code == 1 and "已分配给其他账号" in taken.output

    with database(app):
        user = User.by_account(alice)
        Factor.create(user=user, method="token", external_id="T-1", label="T-1")
        sessions.start(user, sessions.FULL, Client(ip="192.0.2.1"))
    result = cli("token", "unassign", "T-1")
    assert result.exit_code == 0, result.output
    assert result.output == f"unassigned T-1 from {alice}\n"
    with database(app):
        assert not Factor.select().where(Factor.method == "token").exists()
        assert not LoginSession.select().where(LoginSession.ended_at.is_null()).exists()
    assert cli("token", "list", "--unassigned").output.splitlines() == ["H-2\thotp\t8\t-\t-", "T-1\ttotp\t6\t-\t-"]
    again = cli("token", "unassign", "T-1")
    assert again.exit_code == 1 and "未分配" in again.output
