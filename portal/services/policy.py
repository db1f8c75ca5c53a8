"""Admin policy: which methods are offered, and who must bind a second factor."""

from __future__ import annotations

import ipaddress

from portal.models import Setting, User
from portal.services.errors import InvalidInput

FORCE_MODES = ("off", "all", "listed")
# The policy keys of DESIGN.md §5; one whose method module is not in this release is accepted (so a
# policy can be set ahead of an upgrade) and offered to nobody.
CONTRACT_KEYS = ("app", "wechat", "totp", "email", "sms", "token", "webauthn")


ON_OFF = ("off", "on")
# mail_requires_app_password=on: IMAP/POP3/SMTP take only app passwords, also from users with no factor.
# trusted_networks: CIDRs whose logins skip the second step (never for admins); "" = none.
# campus_networks: "CIDR label" lines (e.g. "10.0.0.0/8 校园网") naming places on 登录记录 before the IP database.
# risk_step_up=on: a login from a new place (province, or country abroad) asks the second step even on a
# trusted device (admins always get it, whatever this says).
# admin_methods: the only methods admins may bind and use (e.g. webauthn: security keys); "" = any.
DEFAULTS = {
    "force_2fa": "off",
    "enabled_methods": "app,wechat",
    "mail_requires_app_password": "off",
    "trusted_networks": "",
    "admin_methods": "",
    "campus_networks": "",
    "risk_step_up": "off",
}
# A trusted network wider than this would switch the second step off for a large part of the Internet.
WIDEST_PREFIX = {4: 8, 6: 32}


def get(key: str) -> str:
    row = Setting.get_or_none(Setting.key == key)
    return row.value if row else DEFAULTS[key]


def set_value(key: str, value: str) -> None:
    """Store one policy setting after validating it."""
    if key not in DEFAULTS:
        raise InvalidInput(f"unknown policy {key!r}; known: {', '.join(DEFAULTS)}")
    if key == "force_2fa" and value not in FORCE_MODES:
        raise InvalidInput(f"force_2fa must be one of {', '.join(FORCE_MODES)}")
    if key in ("enabled_methods", "admin_methods"):
        value = ",".join(parse_methods(value))
    if key == "mail_requires_app_password" and value not in ON_OFF:
        raise InvalidInput("mail_requires_app_password must be on or off")
    if key == "trusted_networks":
        value = ",".join(str(network) for network in parse_networks(value))
    if key == "risk_step_up" and value not in ON_OFF:
        raise InvalidInput("risk_step_up must be on or off")
    if key == "campus_networks":
        value = "; ".join(f"{network} {label}".strip() for network, label in parse_campus_networks(value))
    Setting.insert(key=key, value=value).on_conflict(
        conflict_target=[Setting.key], update={Setting.value: value}
    ).execute()


def parse_methods(raw: str) -> list[str]:
    from portal.services.factors import METHODS  # the methods use policy; the list is theirs

    known = [*METHODS, *(key for key in CONTRACT_KEYS if key not in METHODS)]
    methods = [m.strip() for m in raw.split(",") if m.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise InvalidInput(f"unknown methods: {', '.join(unknown)}; known: {', '.join(known)}")
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
            raise InvalidInput(f"trusted_networks: {exc}") from exc
        if network.prefixlen < WIDEST_PREFIX[network.version]:
            widest = WIDEST_PREFIX[network.version]
            raise InvalidInput(f"trusted_networks: {part} is too wide (at most /{widest} for IPv{network.version})")
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
            raise InvalidInput(f"campus_networks: {exc}") from exc
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
