"""短信 sending: both providers over real HTTP against the loopback stub, which checks every signature."""

from __future__ import annotations

import logging
import time

import pytest

from portal import config as config_module
from portal.config import ConfigError
from portal.services import sms_gateway
from portal.services.errors import Unavailable
from portal.services.sms_gateway import SmsFailed
from tests.helpers import free_port

PHONE = "+8613800138000"
PROVIDERS = ["aliyun", "tencent"]
SIGNATURE_ERROR = {"aliyun": "SignatureDoesNotMatch", "tencent": "AuthFailure.SignatureFailure"}


@pytest.fixture(params=PROVIDERS)
def provider(request, ctx, sms_stub) -> str:
    """The app sends through the stub as Aliyun, then as Tencent."""
    ctx.config.update(sms_stub.config(request.param))
    return request.param


def test_both_providers_deliver_the_code(provider, sms_stub):
    assert sms_gateway.configured()
    sms_gateway.send_code(PHONE, "login", "123456")
    [message] = sms_stub.messages
    assert message.provider == provider
    assert message.phone == PHONE
    assert message.raw_phone == {"aliyun": "13800138000", "tencent": PHONE}[provider]
    assert message.code == "123456"
    assert message.sign_name == "明德理工学院" and message.template == sms_stub.template
    assert message.params == {"aliyun": {"code": "123456"}, "tencent": ["123456"]}[provider]
    assert sms_stub.last_code(PHONE) == "123456"


def test_each_message_is_signed_afresh(provider, sms_stub):
    """Two sends in the same second: a new nonce (Aliyun refuses a reused one), both accepted."""
    sms_gateway.send_code(PHONE, "login", "111111")
    sms_gateway.send_code(PHONE, "login", "222222")
    assert sms_stub.codes(PHONE) == ["111111", "222222"]
    assert sms_stub.rejections == []


def test_international_number(provider, sms_stub):
    """Aliyun: country code + number without '+'; Tencent: E.164."""
    sms_gateway.send_code("+85291234567", "bind", "654321")
    [message] = sms_stub.messages
    assert message.phone == "+85291234567"
    assert message.raw_phone == {"aliyun": "85291234567", "tencent": "+85291234567"}[provider]


def test_wrong_secret_is_a_signature_error(provider, ctx, sms_stub):
    ctx.config["SMS_KEY_SECRET"] = "not-the-secret"
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert failed.value.detail == SIGNATURE_ERROR[provider]
    assert failed.value.provider == provider
    assert sms_stub.messages == []
    assert sms_stub.rejections == [(provider, SIGNATURE_ERROR[provider])]


def test_unknown_key_id(provider, ctx, sms_stub):
    ctx.config["SMS_KEY_ID"] = "someone-else"
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert (
        failed.value.detail
        == {"aliyun": "InvalidAccessKeyId.NotFound", "tencent": "AuthFailure.SecretIdNotFound"}[provider]
    )


@pytest.mark.parametrize("setting", ["SMS_SIGN_NAME", "SMS_TEMPLATE"])
def test_unapproved_sign_name_or_template(provider, ctx, sms_stub, setting):
    ctx.config[setting] = "未审核"
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    expected = {
        ("aliyun", "SMS_SIGN_NAME"): "isv.SMS_SIGNATURE_ILLEGAL",
        ("aliyun", "SMS_TEMPLATE"): "isv.SMS_TEMPLATE_ILLEGAL",
        ("tencent", "SMS_SIGN_NAME"): "FailedOperation.SignatureIncorrectOrUnapproved",
        ("tencent", "SMS_TEMPLATE"): "FailedOperation.TemplateIncorrectOrUnapproved",
    }
    assert failed.value.detail == expected[(provider, setting)]
    assert sms_stub.messages == []


def test_provider_error_code_is_the_detail(provider, sms_stub):
    sms_stub.fail()
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    error = failed.value
    assert isinstance(error, Unavailable) and error.status == 503 and error.code == "sms_failed"
    assert error.message == "短信发送失败,请稍后重试"
    assert (
        error.detail
        == {"aliyun": "isv.BUSINESS_LIMIT_CONTROL", "tencent": "LimitExceeded.PhoneNumberDailyLimit"}[provider]
    )
    assert sms_stub.messages == []


def test_tencent_request_level_error(ctx, sms_stub):
    ctx.config.update(sms_stub.config("tencent"))
    sms_stub.fail("InternalError.Timeout", as_error=True)
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert failed.value.detail == "InternalError.Timeout"


def test_an_answer_that_is_not_json(provider, sms_stub):
    sms_stub.garbage()
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert failed.value.detail == "bad_json"


def test_a_slow_provider_costs_a_bounded_wait(provider, ctx, sms_stub):
    ctx.config["SMS_TIMEOUT"] = 0.5
    sms_stub.slow(10)
    started = time.monotonic()
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert time.monotonic() - started < 2
    assert failed.value.detail == "timeout"


def test_a_trickling_answer_is_cut_off(provider, ctx, sms_stub):
    """Each byte arrives well within the read timeout; the whole answer does not."""
    ctx.config["SMS_TIMEOUT"] = 0.5
    sms_stub.slow(20, trickle=True)
    started = time.monotonic()
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert time.monotonic() - started < 2.5
    assert failed.value.detail == "timeout"


def test_a_dead_provider_fails_at_once(provider, ctx):
    ctx.config["SMS_API_BASE"] = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert time.monotonic() - started < 2
    assert failed.value.detail == "connection_error"


def test_no_secret_or_code_in_the_log(provider, ctx, sms_stub, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request line at DEBUG
    sms_gateway.send_code(PHONE, "login", "987654")
    sms_stub.fail()
    with pytest.raises(SmsFailed):
        sms_gateway.send_code(PHONE, "login", "876543")
    text = caplog.text
    assert "accepted by" in text
    assert {"aliyun": "isv.BUSINESS_LIMIT_CONTROL", "tencent": "LimitExceeded.PhoneNumberDailyLimit"}[provider] in text
    for secret in (sms_stub.secret, "987654", "876543", "13800138000", "Signature="):
        assert secret not in text
    assert "138****8000" in text


def test_console_prints_the_code(ctx, sms_stub, caplog):
    ctx.config.update(SMS_PROVIDER="console")
    assert sms_gateway.configured()
    with caplog.at_level(logging.WARNING):
        sms_gateway.send_code(PHONE, "login", "123456")
    assert "短信 to +8613800138000: 验证码 123456 (login)" in caplog.text
    assert sms_stub.requests == 0


def test_development_defaults_to_the_console():
    config = config_module.load({"ENV": "development"}, environ={})
    assert config["SMS_PROVIDER"] == "console"
    assert config_module.load({"ENV": "production"}, environ={})["SMS_PROVIDER"] == ""


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"SMS_PROVIDER": ""}, False),
        ({"SMS_PROVIDER": "console"}, True),
        ({"SMS_PROVIDER": "aliyun", "SMS_TEMPLATE": ""}, False),
        ({"SMS_PROVIDER": "tencent", "SMS_APP_ID": ""}, False),
        ({"SMS_PROVIDER": "tencent"}, True),
        ({"SMS_PROVIDER": "aliyun", "SMS_APP_ID": ""}, True),  # Aliyun has no app id
    ],
)
def test_configured(ctx, sms_stub, settings, expected):
    ctx.config.update(sms_stub.config("tencent"))
    ctx.config.update(settings)
    assert sms_gateway.configured() is expected


def test_unconfigured_sends_nothing(ctx, sms_stub):
    ctx.config.update(sms_stub.config("aliyun", SMS_KEY_SECRET=""))
    with pytest.raises(SmsFailed) as failed:
        sms_gateway.send_code(PHONE, "login", "123456")
    assert failed.value.detail == "not_configured"
    assert sms_stub.requests == 0


def test_only_e164_numbers_are_sent(ctx):
    ctx.config.update(SMS_PROVIDER="console")
    with pytest.raises(ValueError):
        sms_gateway.send_code("13800138000", "login", "123456")


# -- configuration refusals --------------------------------------------------------------------------

PRODUCTION = {"ENV": "production", "SECRET_KEY": "s" * 40, "DATA_KEY": "d" * 40}
COMPLETE = {
    "SMS_KEY_ID": "id",
    "SMS_KEY_SECRET": "secret",
    "SMS_SIGN_NAME": "明德理工学院",
    "SMS_TEMPLATE": "SMS_1",
    "SMS_APP_ID": "1400000000",
}


def _start(tmp_path, environ: dict, **overrides) -> dict:
    config = config_module.load(overrides, environ=environ)
    config_module.ensure_secrets(config, str(tmp_path))
    return config


@pytest.mark.parametrize(
    ("provider", "missing"),
    [
        ("aliyun", "SMS_KEY_ID"),
        ("aliyun", "SMS_KEY_SECRET"),
        ("aliyun", "SMS_SIGN_NAME"),
        ("aliyun", "SMS_TEMPLATE"),
        ("tencent", "SMS_APP_ID"),
        ("tencent", "SMS_KEY_SECRET"),
    ],
)
def test_production_refuses_a_half_configured_provider(tmp_path, provider, missing):
    environ = {f"PORTAL_{k}": v for k, v in COMPLETE.items() if k != missing} | {"PORTAL_SMS_PROVIDER": provider}
    with pytest.raises(ConfigError, match=f"PORTAL_SMS_PROVIDER={provider} without PORTAL_{missing}"):
        _start(tmp_path, environ, **PRODUCTION)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_production_starts_with_a_complete_provider(tmp_path, provider):
    environ = {f"PORTAL_{k}": v for k, v in COMPLETE.items()} | {"PORTAL_SMS_PROVIDER": provider}
    assert _start(tmp_path, environ, **PRODUCTION)["SMS_PROVIDER"] == provider


def test_production_without_sms_starts(tmp_path):
    assert _start(tmp_path, {}, **PRODUCTION)["SMS_PROVIDER"] == ""


def test_production_refuses_the_console(tmp_path):
    with pytest.raises(ConfigError, match="development only"):
        _start(tmp_path, {"PORTAL_SMS_PROVIDER": "console"}, **PRODUCTION)


@pytest.mark.parametrize("env", ["production", "development"])
def test_an_unknown_provider_is_refused(tmp_path, env):
    with pytest.raises(ConfigError, match="PORTAL_SMS_PROVIDER must be"):
        _start(tmp_path, {"PORTAL_SMS_PROVIDER": "alyun"}, **(PRODUCTION | {"ENV": env}))


@pytest.mark.parametrize("raw", ["0", "-1", "five", "600"])
def test_a_bad_timeout_is_refused(tmp_path, raw):
    with pytest.raises(ConfigError, match="PORTAL_SMS_TIMEOUT"):
        _start(tmp_path, {"PORTAL_SMS_TIMEOUT": raw}, ENV="development")


def test_a_fractional_timeout_from_the_environment(tmp_path):
    assert _start(tmp_path, {"PORTAL_SMS_TIMEOUT": "2.5"}, ENV="development")["SMS_TIMEOUT"] == "2.5"
