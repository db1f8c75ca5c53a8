"""Phone numbers for 短信: what users type → E.164, only numbers that can receive a text; masking."""

from __future__ import annotations

import pytest

from portal.services import phone_numbers
from portal.services.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800138000", "+8613800138000"),
        (" 138 0013 8000 ", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        ("86-138-0013-8000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("(+86) 199 1234 5678", "+8619912345678"),
        ("+44 7911 123456", "+447911123456"),  # a UK mobile
        ("+852 9123 4567", "+85291234567"),  # Hong Kong mobile
        ("+1 650 253 0000", "+16502530000"),  # NANP: fixed line or mobile, cannot be told apart
    ],
)
def test_normalise(raw, e164):
    assert phone_numbers.normalise(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "12345",
        "1380013800",  # ten digits
        "138001380001",  # twelve
        "23800138000",  # no mainland mobile starts with 2
        "010 6552 9988",  # Beijing landline
        "+86 10 6552 9988",
        "029-8560-3000",  # Xi'an landline
        "400 810 8888",  # a service number, no texts
        "+44 20 7946 0958",  # London landline
        "+86 138 0013 800O",  # letter O
        "１３８００１３８０００",  # full-width digits are not normalised
        "13800138000\x00",
        "1" * 100,
        "abc",
    ],
)
def test_normalise_refuses(raw):
    with pytest.raises(InvalidInput) as refused:
        phone_numbers.normalise(raw)
    assert refused.value.message == "请输入正确的手机号码"


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+8613800138000", "138****8000"),
        ("+447911123456", "+44 791****3456"),
        ("+16502530000", "+1 650****0000"),
        ("+85291234567", "+852 91****67"),  # short national numbers keep more hidden
        ("not a number", "****"),
    ],
)
def test_mask(e164, masked):
    assert phone_numbers.mask(e164) == masked
