"""Admin policy (/admin/policy, ``flask policy set``): which methods are offered, who must bind a second
factor and by when, trusted networks and devices, lockout thresholds, the step-up window, the support contact.

Stored in the Setting table and read from it each time, so a change applies on every worker at once;
keys in FROM_CONFIG fall back to their deployment setting. The form of each value: policy_values.
"""

from __future__ import annotations

import ipaddress

import peewee
from flask import current_app
from flask_babel import gettext as _

from portal.db import db
from portal.models import Setting, User
from portal.services import audit, policy_values
from portal.services.client import Client
from portal.services.errors import InvalidInput

# The policy keys of DESIGN.md §5; one whose method module is not in this release is accepted (so a
# policy can be set ahead of an upgrade) and offered to nobody.
CONTRACT_KEYS = ("app", "wechat", "totp", "email", "sms", "token", "webauthn")
FORCE_MODES, ON_OFF = policy_values.FORCE_MODES, policy_values.ON_OFF

# mail_requires_app_password=on: IMAP/POP3/SMTP take only app passwords, also from users with no factor.
# trusted_networks: CIDRs whose logins skip the second step (never for admins); "" = none.
# campus_networks: "CIDR label" lines (e.g. "10.0.0.0/8 校园网") naming places on 登录记录 before the IP database.
# risk_step_up=on: a login from a new place (province, or country abroad) asks the second step even on a
# trusted device (admins always get it, whatever this says).
# admin_methods: the only methods admins may bind and use (e.g. webauthn: security keys); "" = any.
# force_2fa_deadline: a date (Beijing time) until whose end a forced user may still choose 稍后绑定; "" = none.
# force_2fa_snoozes: how many times a forced user may choose 稍后绑定 (0 = never).
DEFAULTS = {
    "force_2fa": "off",
    "enabled_methods": "app,wechat",
    "mail_requires_app_password": "off",
    "trusted_networks": "",
    "admin_methods": "",
    "campus_networks": "",
    "risk_step_up": "off",
    "force_2fa_deadline": "",
    "force_2fa_snoozes": "0",
}
# Keys whose default is a deployment setting (portal.config, PORTAL_*): a policy row overrides it.
FROM_CONFIG = {
    "trusted_device_days": "TRUSTED_DEVICE_DAYS",
    "lockout_account_failures": "THROTTLE_ACCOUNT_FAILURES",
    "lockout_ip_failures": "THROTTLE_IP_FAILURES",
    "lockout_window_minutes": "THROTTLE_WINDOW_MINUTES",
    "step_up_minutes": "STEP_UP_MINUTES",
    "support_contact": "SUPPORT_CONTACT",
}
KEYS = (*DEFAULTS, *FROM_CONFIG)
# A trusted network wider than this would switch the second step off for a large part of the Internet.
WIDEST_PREFIX = {4: 8, 6: 32}


class PolicyInvalid(InvalidInput):
    """Some values were refused; nothing was stored. ``errors``: key -> message for that field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(_("策略未保存:请更正标出的项目"))
        self.errors = errors


def get(key: str) -> str:
    """The value in force (read from the database each time: a change applies on every worker at once)."""
    row = Setting.get_or_none(Setting.key == key)
    return row.value if row else _default(key)


def number(key: str) -> int:
    """A whole-number policy: trusted_device_days, lockout_*, step_up_minutes, force_2fa_snoozes."""
    return int(get(key))


def support_contact() -> str:
    """Whom users are told to contact: the policy, else PORTAL_SUPPORT_CONTACT (else the default, translated).

    Every page shows it, error pages too: with the database unreachable, the deployment's setting.
    """
    try:
        return get("support_contact")
    except peewee.PeeweeException:
        return _default("support_contact")


def current() -> dict[str, str]:
    """Every key's value in force, in one query."""
    rows = {row.key: row.value for row in Setting.select().where(Setting.key.in_(KEYS))}
    return {key: rows[key] if key in rows else _default(key) for key in KEYS}


def _default(key: str) -> str:
    if key in FROM_CONFIG:
        return str(current_app.config[FROM_CONFIG[key]])
    return DEFAULTS[key]


def set_value(key: str, value: str, by: User | None = None, client: Client | None = None) -> None:
    """Store one policy setting after validating it (the command line: ``policy set``)."""
    if key not in KEYS:
        raise InvalidInput(f"unknown policy {key!r}; known: {', '.join(KEYS)}")
    try:
        update({key: value}, by=by, client=client)
    except PolicyInvalid as exc:
        raise InvalidInput("; ".join(exc.errors.values())) from exc


def update(changes: dict[str, str], by: User | None = None, client: Client | None = None) -> list[str]:
    """Validate and store ``changes`` all together or not at all; one audit row per key whose value changed.

    Returns the changed keys. Raises PolicyInvalid (per-key messages) when any value is refused.
    """
    unknown = [key for key in changes if key not in KEYS]
    if unknown:
        raise PolicyInvalid({key: _("未知的策略项:%(key)s", key=key) for key in unknown})
    old, errors, new = current(), {}, {}
    for key, raw in changes.items():
        try:
            value = policy_values.normalize(key, raw, old[key])
        except InvalidInput as exc:
            errors[key] = str(exc.message)
            continue
        if value != old[key]:
            new[key] = value
    for key, message in policy_values.cross_errors({**old, **new}, set(new)).items():
        errors.setdefault(key, message)
    if errors:
        raise PolicyInvalid(errors)
    with db.atomic():
        for key, value in new.items():
            Setting.insert(key=key, value=value).on_conflict(
                conflict_target=[Setting.key], update={Setting.value: value}
            ).execute()
            detail = f"{key}: {_shown(old[key])} -> {_shown(value)}" + (f"; by {by.account}" if by else "")
            audit.record("policy_changed", client=client, detail=detail)
    return list(new)


def _shown(value: str) -> str:
    return value if value else '""'


def parse_methods(raw: str) -> list[str]:
    from portal.services.factors import METHODS  # the methods use policy; the list is theirs

    known = [*METHODS, *(key for key in CONTRACT_KEYS if key not in METHODS)]
    methods = [m.strip() for m in raw.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise InvalidInput(
            _("未知的验证方式:%(unknown)s(可用:%(known)s)", unknown=", ".join(unknown), known=", ".join(known))
        )
    return methods


def must_bind(user: User) -> bool:
    """Forced binding: admins always; everyone, or listed users, as the policy says."""
    mode = get("force_2fa")
    return user.is_staff or mode == "all" or (mode == "listed" and user.force_2fa)


def must_bind_condition():
    """``must_bind`` as a condition on User rows, to count the accounts it applies to in one query."""
    mode = get("force_2fa")
    if mode == "all":
        return User.id.is_null(False)
    staff = User.role != ""
    return (staff | User.force_2fa) if mode == "listed" else staff


def parse_networks(raw: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """'10.0.0.0/8, 192.168.1.0/24, 2001:db8::/48' (a bare address is one host); host bits must be 0."""
    networks = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            network = ipaddress.ip_network(part)
        except ValueError as exc:
            raise InvalidInput(_("不是有效的网段(CIDR,主机位须为 0):%(value)s", value=part)) from exc
        if network.prefixlen < WIDEST_PREFIX[network.version]:
            widest = WIDEST_PREFIX[network.version]
            raise InvalidInput(
                _("网段 %(value)s 范围过大(IPv%(v)s 最大为 /%(widest)s)", value=part, v=network.version, widest=widest)
            )
        networks.append(network)
    return networks


def parse_campus_networks(raw: str) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    """'10.0.0.0/8 校园网' per line (or separated by ';'): a CIDR, a space, the label people read."""
    entries = []
    for line in filter(None, (p.strip() for p in raw.replace(";", "\n").splitlines())):
        cidr, _sep, label = line.partition(" ")
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise InvalidInput(_("不是有效的网段(CIDR):%(value)s", value=cidr)) from exc
        entries.append((network, label.strip()))
    return entries


def in_trusted_network(ip: str) -> bool:
    """Whether a client address (as the proxy hops of PORTAL_TRUSTED_PROXIES give it) is in trusted_networks."""
    raw = get("trusted_networks")
    if not raw or not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in parse_networks(raw))
