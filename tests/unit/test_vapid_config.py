"""PORTAL_VAPID_PRIVATE_KEY and PORTAL_VAPID_SUBJECT (Web Push to the 邮箱安全 App), and
`flask --app wsgi push keys` (DESIGN §5 "邮箱安全 App as a web app")."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from portal import config as config_module
from portal import create_app, vapid
from portal.config import ConfigError
from tests.conftest import make_config

SECRETS = {"PORTAL_SECRET_KEY": "s" * 40, "PORTAL_DATA_KEY": "d" * 40}


def _start(tmp_path, environ: dict | None = None, **overrides) -> dict:
    config = config_module.load(overrides, environ={**SECRETS, **(environ or {})})
    config_module.ensure_secrets(config, str(tmp_path))
    return config


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_no_key_in_production_means_no_pushes(tmp_path):
    config = _start(tmp_path)
    assert config["VAPID_PRIVATE_KEY"] == ""
    assert not (tmp_path / "secrets.json").exists()


def test_a_raw_base64url_key_is_accepted(tmp_path):
    key = vapid.new_private_key()
    assert len(key) == 43
    assert _start(tmp_path, {"PORTAL_VAPID_PRIVATE_KEY": key})["VAPID_PRIVATE_KEY"] == key


def test_a_pem_key_is_accepted_and_names_the_same_public_key(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    raw = vapid.b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    config = _start(tmp_path, {"PORTAL_VAPID_PRIVATE_KEY": _pem(key)})
    assert vapid.public_key(str(config["VAPID_PRIVATE_KEY"])) == vapid.public_key(raw)


BAD_KEYS = {
    "not base64url": "not a key!",
    "too short": vapid.b64url(b"\x01" * 31),
    "too long": vapid.b64url(b"\x01" * 33),
    "zero": vapid.b64url(bytes(32)),
    "beyond the curve order": vapid.b64url(b"\xff" * 32),
    "an RSA PEM": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "a P-384 PEM": _pem(ec.generate_private_key(ec.SECP384R1())),
    "a broken PEM": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
def test_a_malformed_key_refuses_to_start(tmp_path, case):
    with pytest.raises(ConfigError, match="PORTAL_VAPID_PRIVATE_KEY"):
        _start(tmp_path, {"PORTAL_VAPID_PRIVATE_KEY": BAD_KEYS[case]})


@pytest.mark.parametrize(
    ("public_url", "subject"),
    [("https://mail.xamd.edu.cn:8443/portal", "https://mail.xamd.edu.cn"), ("http://127.0.0.1:8000", vapid.NOBODY)],
)
def test_the_default_subject(tmp_path, public_url, subject):
    assert _start(tmp_path, {"PORTAL_PUBLIC_URL": public_url})["VAPID_SUBJECT"] == subject


@pytest.mark.parametrize("subject", ["mailto:postmaster@mail.xamd.edu.cn", "https://mail.xamd.edu.cn"])
def test_a_configured_subject(tmp_path, subject):
    assert _start(tmp_path, {"PORTAL_VAPID_SUBJECT": subject})["VAPID_SUBJECT"] == subject


@pytest.mark.parametrize(
    "subject", ["postmaster@mail.xamd.edu.cn", "mailto:nobody", "http://mail.xamd.edu.cn", "https://mail.x.cn/path"]
)
def test_a_bad_subject_refuses_to_start(tmp_path, subject):
    with pytest.raises(ConfigError, match="PORTAL_VAPID_SUBJECT"):
        _start(tmp_path, {"PORTAL_VAPID_SUBJECT": subject})


def test_development_generates_one_key_and_keeps_it(tmp_path):
    first = _start(tmp_path, {"PORTAL_ENV": "development"})
    second = _start(tmp_path, {"PORTAL_ENV": "development"})  # another gunicorn worker
    assert first["VAPID_PRIVATE_KEY"] and first["VAPID_PRIVATE_KEY"] == second["VAPID_PRIVATE_KEY"]
    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert stored["VAPID_PRIVATE_KEY"] == first["VAPID_PRIVATE_KEY"]
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0
    vapid.load(str(first["VAPID_PRIVATE_KEY"]))


def test_development_keeps_a_configured_key(tmp_path):
    key = vapid.new_private_key()
    assert _start(tmp_path, {"PORTAL_ENV": "development", "PORTAL_VAPID_PRIVATE_KEY": key})["VAPID_PRIVATE_KEY"] == key


def test_push_keys_prints_a_key_the_portal_accepts(database_url):
    app = create_app(make_config(database_url))
    result = app.test_cli_runner().invoke(args=["push", "keys"])
    assert result.exit_code == 0, result.output
    key_line, public_line = result.output.strip().splitlines()
    assert key_line.startswith("PORTAL_VAPID_PRIVATE_KEY=")
    key = key_line.split("=", 1)[1]

    served = create_app(make_config(database_url, VAPID_PRIVATE_KEY=key))
    with served.app_context():
        public = served.test_client().get("/api/app/v1/push-key").get_json()["vapid_public_key"]
    assert public == vapid.public_key(key) and public_line.endswith(public)
    other = app.test_cli_runner().invoke(args=["push", "keys"]).output.splitlines()[0]
    assert other != key_line
