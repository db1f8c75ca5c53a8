"""Configuration: defaults in code, PORTAL_* environment overrides, safe production checks."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

DEFAULTS: dict[str, object] = {
    "ENV": "production",
    "DATABASE_URL": "sqlite:///instance/portal.db",
    "SECRET_KEY": "",
    "DATA_KEY": "",
    "PUBLIC_URL": "http://127.0.0.1:8000",
    "ORG_NAME": "西安明德理工学院邮件系统",
    "SUPPORT_CONTACT": "网络信息化中心,电话 85603000 转 8012",
    "WECHAT_APPID": "",
    "WECHAT_SECRET": "",
    "WECHAT_API_BASE": "https://api.weixin.qq.com/",
    "SMTP_URL": "",
    "MAIL_SERVERS": "imap=mail.example.edu.cn:993:143,pop3=mail.example.edu.cn:995:110,smtp=mail.example.edu.cn:994:25",
    "MAIL_BACKENDS": "",
    "MAIL_AUTH_SECRET": "",
    "DEV_SIMULATORS": False,
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_MAX_HOURS": 12,
    "TRUSTED_DEVICE_DAYS": 30,
    "THROTTLE_WINDOW_MINUTES": 15,
    "THROTTLE_ACCOUNT_FAILURES": 10,
    "THROTTLE_IP_FAILURES": 30,
    "TRUSTED_PROXIES": 0,
}

# Development talks to the local WeChat stub (`flask --app wsgi wechat-stub`, started by make run).
DEVELOPMENT_DEFAULTS: dict[str, object] = {
    "WECHAT_APPID": "wxdev0000000000000",
    "WECHAT_SECRET": "development-stub-secret",
    "WECHAT_API_BASE": "http://127.0.0.1:8001/",
}

BOOLEAN_KEYS = {"DEV_SIMULATORS"}
INTEGER_KEYS = {
    "SESSION_IDLE_MINUTES",
    "SESSION_MAX_HOURS",
    "TRUSTED_DEVICE_DAYS",
    "THROTTLE_WINDOW_MINUTES",
    "THROTTLE_ACCOUNT_FAILURES",
    "THROTTLE_IP_FAILURES",
    "TRUSTED_PROXIES",
}
SECRET_KEYS = ("SECRET_KEY", "DATA_KEY")


class ConfigError(RuntimeError):
    """The configuration is unsafe or malformed; the app refuses to start."""


def _parse(key: str, raw: str) -> object:
    if key in BOOLEAN_KEYS:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if key in INTEGER_KEYS:
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"PORTAL_{key} must be a whole number, got {raw!r}") from exc
    return raw


def load(overrides: dict | None = None, environ: dict | None = None) -> dict[str, object]:
    """Merge defaults, PORTAL_* environment variables and explicit overrides."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        if f"PORTAL_{key}" in environ:
            config[key] = _parse(key, environ[f"PORTAL_{key}"])
    config.update(overrides or {})
    if config["ENV"] == "development":
        for key, value in DEVELOPMENT_DEFAULTS.items():
            if f"PORTAL_{key}" not in environ and key not in (overrides or {}):
                config[key] = value
    return config


def ensure_secrets(config: dict, instance_path: str) -> None:
    """Production needs real secrets; development keeps generated ones under instance/."""
    missing = [key for key in SECRET_KEYS if not config.get(key)]
    if not missing:
        _check_strength(config)
        return
    if config["ENV"] == "production":
        names = ", ".join(f"PORTAL_{key}" for key in missing)
        raise ConfigError(f"refusing to start in production without {names}")
    path = Path(instance_path) / "secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    for key in missing:
        stored.setdefault(key, secrets.token_urlsafe(32))
        config[key] = stored[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored))
    path.chmod(0o600)


def _check_strength(config: dict) -> None:
    if config["ENV"] != "production":
        return
    for key in SECRET_KEYS:
        if len(str(config[key])) < 32:
            raise ConfigError(f"PORTAL_{key} must be at least 32 characters in production")
    if config["DEV_SIMULATORS"]:
        raise ConfigError("PORTAL_DEV_SIMULATORS must be off in production")


def parse_mail_servers(raw: str) -> list[dict[str, str]]:
    """'imap=HOST:SSL:PLAIN,...' → rows for the app-password page."""
    rows = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        proto, _, rest = part.partition("=")
        host, ssl_port, plain_port = (rest.split(":") + ["", ""])[:3]
        rows.append({"protocol": proto.upper(), "host": host, "ssl": ssl_port, "plain": plain_port})
    return rows
