"""动态口令 (hardware tokens): seed file import, assignment, HOTP/TOTP codes used once, resync."""

from __future__ import annotations

import hashlib
import io
from types import SimpleNamespace

import pskc
import pyotp
import pytest

from portal import crypto
from portal.db import db
from portal.models import AuditEvent, Factor, HardwareToken, LoginSession, User
from portal.services import accounts, hardware_tokens, sessions
from portal.services.errors import Conflict, InvalidCode, InvalidInput, NotAllowed, NotFound
from tests.conftest import PASSWORD
from tests.unit.conftest import FROZEN_TIME, run_threads

RFC_SECRET = b"12345678901234567890"  # RFC 4226 appendix D / RFC 6238 appendix B (SHA-1)
RFC_B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
RFC4226_CODES = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
HOTP_URI = "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
TOTP_URI = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
CSV_HEADER = "serial,secret,type,digits,period,counter\n"
DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}

PSKC_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
"""
HOTP8_PACKAGE = f"""  <KeyPackage>
    <DeviceInfo><Manufacturer>Vendor</Manufacturer><SerialNo>HOTP8-001</SerialNo></DeviceInfo>
    <Key Id="k1" Algorithm="{HOTP_URI}">
      <AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>
        <Counter><PlainValue>5</PlainValue></Counter>
      </Data>
    </Key>
  </KeyPackage>
"""
TOTP_PACKAGE = f"""  <KeyPackage>
    <DeviceInfo><SerialNo>TOTP-002</SerialNo></DeviceInfo>
    <Key Id="k2" Algorithm="{TOTP_URI}">
      <AlgorithmParameters>
        <Suite>HMAC-SHA256</Suite><ResponseFormat Length="6" Encoding="DECIMAL"/>
      </AlgorithmParameters>
      <Data>
        <Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</PlainValue></Secret>
        <TimeInterval><PlainValue>60</PlainValue></TimeInterval>
      </Data>
    </Key>
  </KeyPackage>
"""
OCRA_PACKAGE = """  <KeyPackage>
    <DeviceInfo><SerialNo>OCRA-003</SerialNo></DeviceInfo>
    <Key Id="k3" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1:HOTP-SHA1-6:QN08">
      <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret></Data>
    </Key>
  </KeyPackage>
"""
NO_SECRET_PACKAGE = f"""  <KeyPackage>
    <DeviceInfo><SerialNo>NOSECRET-004</SerialNo></DeviceInfo>
    <Key Id="k4" Algorithm="{HOTP_URI}"><Data><Counter><PlainValue>0</PlainValue></Counter></Data></Key>
  </KeyPackage>
"""


def pskc_xml(*packages: str) -> str:
    """A plain PSKC file written by hand, as a vendor ships it."""
    return PSKC_HEAD + "".join(packages) + "</KeyContainer>\n"


PLAIN_PSKC = pskc_xml(HOTP8_PACKAGE, TOTP_PACKAGE, OCRA_PACKAGE, NO_SECRET_PACKAGE)


def csv_file(*rows: str) -> bytes:
    return (CSV_HEADER + "\n".join(rows) + "\n").encode()


def make_token(serial="HW-1", kind="hotp", digits=6, counter=0, algorithm="sha1", secret=SECRET) -> HardwareToken:
    row = f"{serial},{secret},{kind},{digits},30,{counter},{algorithm}"
    report = hardware_tokens.import_file(csv_file(row), "csv")
    assert report.totals["imported"] == 1, report
    return HardwareToken.by_serial(serial)


def code(token: HardwareToken, counter: int, secret: str = SECRET) -> str:
    return pyotp.HOTP(secret, digits=token.digits, digest=DIGESTS[token.algorithm]).at(counter)


def step_code(token: HardwareToken, offset: int, secret: str = SECRET) -> str:
    return code(token, int(FROZEN_TIME // token.period) + offset, secret)


def encrypted_pskc(setup) -> bytes:
    document = pskc.PSKC()
    document.add_key(serial="ENC-1", secret=RFC_SECRET, algorithm=HOTP_URI, response_length=6, counter=0)
    document.add_key(serial="ENC-2", secret=RFC_SECRET, algorithm=TOTP_URI, response_length=6, time_interval=30)
    setup(document.encryption)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


# --- import ------------------------------------------------------------------------------------


def test_plain_pskc_import_reports_each_serial_and_stores_secrets_encrypted(ctx):
    report = hardware_tokens.import_file(PLAIN_PSKC.encode(), "pskc")
    outcomes = {o.serial: (o.status, o.reason) for o in report.outcomes}
    assert outcomes["HOTP8-001"] == ("imported", "")
    assert outcomes["TOTP-002"] == ("imported", "")
    assert outcomes["OCRA-003"][0] == "invalid" and "unsupported algorithm" in outcomes["OCRA-003"][1]
    assert outcomes["NOSECRET-004"] == ("invalid", "missing secret")
    assert report.totals == {"imported": 2, "skipped": 0, "invalid": 2}

    hotp = HardwareToken.by_serial("HOTP8-001")
    assert (hotp.kind, hotp.digits, hotp.algorithm, hotp.counter, hotp.user) == ("hotp", 8, "sha1", 5, None)
    totp = HardwareToken.by_serial("TOTP-002")
    assert (totp.kind, totp.digits, totp.algorithm, totp.period) == ("totp", 6, "sha256", 60)
    (raw,) = db.execute_sql("SELECT secret FROM hardware_token WHERE serial = 'HOTP8-001'").fetchone()
    assert RFC_B32 not in raw and "1234567890" not in raw
    assert crypto.decrypt(raw) == RFC_B32
    assert AuditEvent.get(AuditEvent.event == "token_import").detail == "2 imported, 0 skipped, 2 invalid"


def test_dry_run_writes_nothing(ctx):
    report = hardware_tokens.import_file(PLAIN_PSKC.encode(), "pskc", dry_run=True)
    assert report.dry_run and report.totals["imported"] == 2
    assert not HardwareToken.select().exists()
    assert not AuditEvent.select().where(AuditEvent.event == "token_import").exists()


def test_import_from_a_path_and_again_skips_present_serials(ctx, tmp_path):
    path = tmp_path / "tokens.xml"
    path.write_text(PLAIN_PSKC)
    hardware_tokens.import_file(path)
    again = hardware_tokens.import_file(str(path))
    assert {(o.serial, o.status, o.reason) for o in again.outcomes if o.status != "invalid"} == {
        ("HOTP8-001", "skipped", "already present"),
        ("TOTP-002", "skipped", "already present"),
    }
    assert HardwareToken.select().count() == 2


def test_csv_import_reports_bad_rows_and_imports_the_valid_ones(ctx):
    data = csv_file(
        f"CSV-1,{SECRET},hotp,6,,0",
        f"CSV-2,{SECRET.lower()},TOTP,8,30,",
        "CSV-3,not-base32!,totp,6,30,0",
        f"CSV-4,{SECRET},totp,7,30,0",
        f"CSV-5,{SECRET},ocra,6,30,0",
        "CSV-6,,hotp,6,30,0",
        f"CSV-7,{SECRET},totp,6,30,0,md5",
        f"CSV-1,{SECRET},hotp,6,30,0",
        f"CSV-8,{SECRET},hotp,６,30,0",
    )
    report = hardware_tokens.import_file(data, "csv")
    got = [(o.serial, o.status, o.reason, o.where) for o in report.outcomes]
    assert got == [
        ("CSV-1", "imported", "", ""),
        ("CSV-2", "imported", "", ""),
        ("CSV-3", "invalid", "bad base32 secret", "line 4"),
        ("CSV-4", "invalid", "digits must be 6 or 8, not 7", "line 5"),
        ("CSV-5", "invalid", "unsupported type: ocra (hotp or totp)", "line 6"),
        ("CSV-6", "invalid", "missing secret", "line 7"),
        ("CSV-7", "invalid", "unsupported algorithm: md5", "line 8"),
        ("CSV-1", "invalid", "duplicate serial in the file", "line 9"),
        ("CSV-8", "invalid", "digits is not a number: '６'", "line 10"),
    ]
    assert [t.serial for t in HardwareToken.select().order_by(HardwareToken.serial)] == ["CSV-1", "CSV-2"]
    assert HardwareToken.by_serial("CSV-2").digits == 8


@pytest.mark.parametrize(
    "setup, unlock",
    [
        (lambda enc: enc.setup_preshared_key(key=bytes.fromhex("12" * 16)), {"key_hex": "12" * 16}),
        (lambda enc: enc.setup_pbkdf2("s3cret pass", iterations=1000), {"password": "s3cret pass"}),
    ],
    ids=["preshared-key", "pbkdf2-password"],
)
def test_encrypted_pskc_imports_with_the_right_key_and_refuses_a_wrong_one(ctx, setup, unlock):
    data = encrypted_pskc(setup)
    assert b"MTIzNDU2Nzg5MDEyMzQ1Njc4OTA" not in data  # really encrypted
    wrong = {k: ("34" * 16 if k == "key_hex" else "wrong pass") for k in unlock}
    with pytest.raises(InvalidInput, match="cannot decrypt: wrong key or password"):
        hardware_tokens.import_file(data, "pskc", **wrong)
    with pytest.raises(InvalidInput, match="the file is encrypted"):
        hardware_tokens.import_file(data, "pskc")
    assert not HardwareToken.select().exists()

    report = hardware_tokens.import_file(data, "pskc", **unlock)
    assert report.totals == {"imported": 2, "skipped": 0, "invalid": 0}
    token = HardwareToken.by_serial("ENC-1")
    assert crypto.decrypt(token.secret) == RFC_B32
    assert hardware_tokens.check_code(token, RFC4226_CODES[0]) == 0


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<KeyContainer", "not a valid PSKC file"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc">&b;</KeyContainer>',
            "not a valid PSKC file",
        ),
    ],
    ids=["truncated", "entities"],
)
def test_unreadable_pskc_is_a_clear_error(ctx, data, message):
    with pytest.raises(InvalidInput, match=message):
        hardware_tokens.import_file(data, "pskc")


def test_bad_key_options_are_clear_errors(ctx):
    data = encrypted_pskc(lambda enc: enc.setup_preshared_key(key=bytes.fromhex("12" * 16)))
    with pytest.raises(InvalidInput, match="hexadecimal"):
        hardware_tokens.import_file(data, "pskc", key_hex="zz")
    with pytest.raises(InvalidInput, match="either --key or --password"):
        hardware_tokens.import_file(data, "pskc", key_hex="12" * 16, password="x")
    with pytest.raises(InvalidInput, match="PSKC files only"):
        hardware_tokens.import_file(csv_file(f"A,{SECRET},hotp,6,30,0"), "csv", password="x")
    with pytest.raises(InvalidInput, match="cannot read"):
        hardware_tokens.import_file("/nonexistent/tokens.xml")


# --- HOTP ----------------------------------------------------------------------------------------


def test_hotp_matches_the_rfc_4226_vectors(ctx):
    token = make_token(secret=RFC_B32)
    for counter, rfc_code in enumerate(RFC4226_CODES):
        assert hardware_tokens.check_code(token, rfc_code) == counter
    assert HardwareToken.get_by_id(token.id).counter == 10


def test_hotp_look_ahead_window_then_resync(ctx):
    token = make_token(counter=100)
    assert hardware_tokens.check_code(token, code(token, 105)) == 105  # 5 presses ahead
    assert HardwareToken.get_by_id(token.id).counter == 106
    with pytest.raises(InvalidCode) as ahead:  # 15 ahead: outside the window of 10
        hardware_tokens.check_code(token, code(token, 121))
    assert ahead.value.code == "resync_required" and "输入连续两个动态口令以同步" in ahead.value.message
    assert HardwareToken.get_by_id(token.id).counter == 106
    with pytest.raises(InvalidCode, match="两个动态口令不连续或不正确"):
        hardware_tokens.resync(token, code(token, 400), code(token, 402))
    hardware_tokens.resync(token, code(token, 400), code(token, 401))
    assert HardwareToken.get_by_id(token.id).counter == 402
    with pytest.raises(InvalidCode) as reused:  # the resync codes are used
        hardware_tokens.check_code(token, code(token, 401))
    assert reused.value.code == "code_reused"
    assert hardware_tokens.check_code(token, code(token, 402)) == 402


def test_resync_refuses_codes_beyond_its_window_and_totp_tokens(ctx):
    token = make_token()
    far = hardware_tokens.RESYNC_WINDOW + 5
    with pytest.raises(InvalidCode, match="两个动态口令不连续或不正确"):
        hardware_tokens.resync(token, code(token, far), code(token, far + 1))
    with pytest.raises(InvalidInput) as totp:
        hardware_tokens.resync(make_token("T-1", "totp"), "123456", "654321")
    assert totp.value.code == "not_hotp"


def test_used_hotp_code_is_refused(ctx):
    token = make_token()
    first = code(token, 0)
    assert hardware_tokens.check_code(token, first) == 0
    with pytest.raises(InvalidCode) as again:
        hardware_tokens.check_code(token, first)
    assert again.value.code == "code_reused"
    assert hardware_tokens.check_code(token, code(token, 3)) == 3
    with pytest.raises(InvalidCode) as skipped:  # passed over by a later code: never valid again
        hardware_tokens.check_code(token, code(token, 2))
    assert skipped.value.code == "code_reused"


def test_wrong_hotp_code(ctx):
    token = make_token()
    near = {code(token, c) for c in range(hardware_tokens.RESYNC_WINDOW)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in near)
    with pytest.raises(InvalidCode, match="动态口令错误,请重新输入") as exc:
        hardware_tokens.check_code(token, wrong)
    assert exc.value.code == "invalid_code"


@pytest.mark.parametrize("kind", ["hotp", "totp"])
def test_one_code_racing_in_threads_is_accepted_once(ctx, app, kind, monkeypatch):
    token = make_token(kind=kind)
    monkeypatch.setattr(hardware_tokens, "time", SimpleNamespace(time=lambda: FROZEN_TIME))
    same = code(token, 0) if kind == "hotp" else step_code(token, 0)

    results = run_threads(app, 6, lambda _: hardware_tokens.check_code(HardwareToken.get_by_id(token.id), same))
    wins = [r for kind_, r in results if kind_ == "ok"]
    losses = [r for kind_, r in results if kind_ == "error"]
    assert len(wins) == 1, results
    assert all(isinstance(e, InvalidCode) and e.code == "code_reused" for e in losses), losses


# --- TOTP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_totp_accepts_one_step_either_side(ctx, offset):
    token = make_token(kind="totp")
    step = int(FROZEN_TIME // 30)
    assert hardware_tokens.check_code(token, step_code(token, offset), now=FROZEN_TIME) == step + offset
    assert HardwareToken.get_by_id(token.id).last_used_step == step + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_totp_refuses_two_steps_away(ctx, offset):
    token = make_token(kind="totp")
    with pytest.raises(InvalidCode, match="动态口令错误"):
        hardware_tokens.check_code(token, step_code(token, offset), now=FROZEN_TIME)


def test_used_totp_code_and_older_steps_are_refused(ctx):
    token = make_token(kind="totp")
    assert hardware_tokens.check_code(token, step_code(token, 0), now=FROZEN_TIME)
    for offset in (0, -1):
        with pytest.raises(InvalidCode) as exc:
            hardware_tokens.check_code(token, step_code(token, offset), now=FROZEN_TIME)
        assert exc.value.code == "code_reused"
    assert hardware_tokens.check_code(token, step_code(token, 1), now=FROZEN_TIME)


def test_totp_rfc_6238_eight_digit_sha256_vector(ctx):
    token = make_token(
        "T-256", "totp", digits=8, algorithm="sha256", secret="GEZDGNBVGY3TQOJQ" * 3 + "GEZA"
    )  # b"1234…9012"
    assert hardware_tokens.check_code(token, "46119246", now=59) == 1


# --- parsing ---------------------------------------------------------------------------------------


def test_eight_digit_tokens_take_eight_digits_only(ctx):
    token = make_token(digits=8)
    full = code(token, 0)
    assert len(full) == 8
    with pytest.raises(InvalidCode, match="请输入 8 位数字动态口令"):
        hardware_tokens.check_code(token, full[:6])
    assert hardware_tokens.check_code(token, f"{full[:4]} {full[4:]}") == 0


@pytest.mark.parametrize(
    "raw",
    ["１２３４５６", "١٢٣٤٥٦", "12345", "1234567", "12345a", "123\t456", "123-456", "", None, "123456\n"],
)
def test_codes_are_parsed_strictly(ctx, raw):
    token = make_token()
    with pytest.raises(InvalidCode, match="请输入 6 位数字动态口令"):
        hardware_tokens.check_code(token, raw)
    assert HardwareToken.get_by_id(token.id).counter == 0


def test_unicode_digits_equal_to_the_right_code_are_refused(ctx):
    token = make_token()
    right = code(token, 0)
    fullwidth = "".join(chr(ord("０") + int(d)) for d in right)
    with pytest.raises(InvalidCode):
        hardware_tokens.check_code(token, fullwidth)
    assert hardware_tokens.check_code(token, right) == 0


# --- assignment and binding ----------------------------------------------------------------------------


@pytest.fixture
def bob(ctx):
    return accounts.create("bob@mail.xamd.edu.cn", PASSWORD, name="Bob")


def test_assign_needs_an_existing_account_and_a_free_token(ctx, user, bob):
    make_token()
    with pytest.raises(NotFound):
        hardware_tokens.assign("HW-1", "nobody@mail.xamd.edu.cn")
    with pytest.raises(NotFound, match="未找到该序列号的动态口令"):
        hardware_tokens.assign("NOPE", user.account)
    assert hardware_tokens.assign("HW-1", "Alice@Mail.xamd.edu.cn").user_id == user.id
    assert hardware_tokens.assign("HW-1", user.account).user_id == user.id  # again: no change
    with pytest.raises(Conflict) as taken:
        hardware_tokens.assign("HW-1", bob.account)
    assert taken.value.code == "assigned_elsewhere"
    assert [t.serial for t in hardware_tokens.listing(unassigned_only=True)] == []
    hardware_tokens.unassign("HW-1")
    assert hardware_tokens.assign("HW-1", bob.account).user_id == bob.id
    assert AuditEvent.select().where(AuditEvent.event == "token_assigned").count() == 2


def test_listing(ctx, user):
    make_token("B-2")
    make_token("A-1", "totp")
    hardware_tokens.assign("B-2", user.account)
    assert [(t.serial, t.user.account if t.user else None) for t in hardware_tokens.listing()] == [
        ("A-1", None),
        ("B-2", user.account),
    ]
    assert [t.serial for t in hardware_tokens.listing(unassigned_only=True)] == ["A-1"]


def test_unassign_removes_the_factor_and_ends_sessions(ctx, user, client):
    make_token()
    hardware_tokens.assign("HW-1", user.account)
    factor = Factor.create(user=user, method="token", external_id="HW-1", label="HW-1")
    sessions.start(user, sessions.FULL, client)
    assert hardware_tokens.unassign("HW-1").id == user.id
    assert Factor.get_or_none(Factor.id == factor.id) is None
    assert not LoginSession.select().where((LoginSession.user == user) & LoginSession.ended_at.is_null()).exists()
    event = AuditEvent.get(AuditEvent.event == "token_unassigned")
    assert (event.user_id, event.method) == (user.id, "token") and "factor removed" in event.detail
    assert HardwareToken.by_serial("HW-1").user is None
    with pytest.raises(Conflict) as again:
        hardware_tokens.unassign("HW-1")
    assert again.value.code == "not_assigned"


def test_find_for_binding(ctx, user, bob):
    make_token()
    with pytest.raises(NotFound, match="未找到该序列号的动态口令"):
        hardware_tokens.find_for_binding(user, "HW-404")
    assert hardware_tokens.find_for_binding(user, " HW-1 ").serial == "HW-1"  # free
    hardware_tokens.assign("HW-1", bob.account)
    with pytest.raises(NotAllowed, match="该动态口令已分配给其他账号"):
        hardware_tokens.find_for_binding(user, "HW-1")
    assert hardware_tokens.find_for_binding(User.get_by_id(bob.id), "HW-1").serial == "HW-1"


def test_bind_check_claims_a_free_token_only_with_a_right_code(ctx, user, bob):
    token = make_token()
    with pytest.raises(InvalidCode):
        hardware_tokens.bind_check(user, "HW-1", "000000" if code(token, 0) != "000000" else "111111")
    assert HardwareToken.by_serial("HW-1").user is None  # a wrong code rolled the claim back
    with pytest.raises(InvalidCode) as far:
        hardware_tokens.bind_check(user, "HW-1", code(token, 50))
    assert "如令牌长期未用,请输入连续两个动态口令以同步" in far.value.message
    assert hardware_tokens.bind_check(user, "HW-1", code(token, 0)) == {"external_id": "HW-1", "label": "HW-1"}
    assert HardwareToken.by_serial("HW-1").user_id == user.id
    with pytest.raises(NotAllowed):
        hardware_tokens.bind_check(bob, "HW-1", code(token, 1))


def test_user_deleted_frees_the_token(ctx, user):
    make_token()
    hardware_tokens.assign("HW-1", user.account)
    User.delete().where(User.id == user.id).execute()
    assert HardwareToken.by_serial("HW-1").user_id is None
