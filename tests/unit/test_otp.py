"""RFC 6238 conformance and strict code parsing (invariant 4)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

import pyotp
import pytest

from portal.services import otp
from portal.services.errors import InvalidCode
from tests.conftest import skip_or_fail

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
# RFC 6238 Appendix B, SHA1 column.
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


def oathtool(*args: str) -> str:
    """Run oathtool; a missing binary skips locally and fails in CI."""
    path = shutil.which("oathtool") or "/usr/bin/oathtool"
    if not os.path.exists(path):
        skip_or_fail("oathtool is not installed (Debian package oathtool)")
    return subprocess.run([path, *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_rfc6238_vectors_with_8_digits(unix_time, expected):
    assert pyotp.TOTP(RFC_SECRET, digits=8, interval=30).at(unix_time) == expected


@pytest.mark.parametrize(("unix_time", "expected"), RFC_VECTORS)
def test_code_at_is_the_rfc_code_truncated_to_6_digits(unix_time, expected):
    # The 6-digit code is the same dynamic truncation modulo 10^6, i.e. the last six digits.
    assert otp.code_at(RFC_SECRET, otp.current_step(unix_time)) == expected[-6:]


def test_portal_uses_30_second_steps_and_6_digits():
    assert (otp.PERIOD, otp.DIGITS) == (30, 6)
    assert otp.current_step(59) == 1
    assert otp.current_step(60) == 2
    assert otp.current_step(29.999) == 0


@pytest.mark.parametrize("unix_time", [0, 59, 1111111111, 1700000000, 2000000000])
def test_code_at_agrees_with_oathtool(unix_time):
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    assert otp.code_at(secret, otp.current_step(unix_time)) == oathtool("--totp", "-b", secret, f"--now=@{unix_time}")


def test_oathtool_agrees_on_the_rfc_secret():
    for unix_time, expected in RFC_VECTORS:
        assert oathtool("--totp", "-b", "-d", "8", RFC_SECRET, f"--now=@{unix_time}") == expected
        assert oathtool("--totp", "-b", RFC_SECRET, f"--now=@{unix_time}") == expected[-6:]


@pytest.mark.parametrize(("raw", "expected"), [("123456", "123456"), ("123 456", "123456"), (" 123456 ", "123456")])
def test_parse_code_accepts_six_ascii_digits_with_ascii_spaces(raw, expected):
    assert otp.parse_code(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "12345",
        "1234567",
        "12345a",
        "１２３４５６",  # full-width digits
        "١٢٣٤٥٦",  # Arabic-Indic digits
        "۱۲۳۴۵۶",  # extended Arabic-Indic digits
        "123\t456",
        "123\u00a0456",  # no-break space
        "123\u3000456",  # ideographic space
        "123456\n",
        "-12345",
        "+123456",
        "12345.6",
        None,
        "",
        "      ",
    ],
)
def test_parse_code_rejects_everything_else(raw):
    with pytest.raises(InvalidCode) as info:
        otp.parse_code(raw)
    assert info.value.code == "invalid_code"


def test_matching_step_accepts_one_step_of_drift_but_not_two():
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    now = 1_700_000_015.0
    step = otp.current_step(now)
    codes = {offset: otp.code_at(secret, step + offset) for offset in range(-2, 3)}
    assert len(set(codes.values())) == 5, "test precondition: distinct codes"
    for offset in (-1, 0, 1):
        assert otp.matching_step(secret, codes[offset], now=now) == step + offset
    for offset in (-2, 2):
        assert otp.matching_step(secret, codes[offset], now=now) is None


def test_matching_step_rejects_a_code_of_another_secret():
    now = 1_700_000_015.0
    step = otp.current_step(now)
    mine, other = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    foreign = otp.code_at(other, step)
    assert foreign not in {otp.code_at(mine, step + k) for k in (-1, 0, 1)}, "test precondition"
    assert otp.matching_step(mine, foreign, now=now) is None


def test_new_secret_is_160_bit_base32_and_fresh():
    secrets = {otp.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert len(base64.b32decode(secret)) == 20


def test_provisioning_uri_names_account_issuer_and_parameters():
    uri = otp.provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "alice@mail.xamd.edu.cn", "西安明德理工学院邮件系统")
    parsed = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/")
    assert parsed.secret == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    assert parsed.name == "alice@mail.xamd.edu.cn"
    assert parsed.issuer == "西安明德理工学院邮件系统"
    assert (parsed.digits, parsed.interval) == (6, 30)


def test_grouped_splits_secret_in_fours():
    assert otp.grouped("ABCDEFGHIJ") == "ABCD EFGH IJ"
