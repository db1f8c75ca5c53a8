"""The form of each policy value (portal.services.policy): one key at a time, then the rules across keys.

Messages name the setting as the /admin/policy page does, so that the page can show them beside the field.
"""

from __future__ import annotations

import re
from datetime import date

from flask_babel import gettext as _

from portal.models import utcnow
from portal.services.errors import InvalidInput
from portal.timezone import local

FORCE_MODES = ("off", "all", "listed")
ON_OFF = ("off", "on")
# Whole numbers and their ranges (inclusive).
RANGES = {
    "trusted_device_days": (1, 90),
    "step_up_minutes": (1, 60),
    "lockout_window_minutes": (5, 60),
    "lockout_account_failures": (3, 50),
    "lockout_ip_failures": (3, 10000),
    "force_2fa_snoozes": (0, 20),
}
# ASVS 2.2.1 (DESIGN §4 invariant 5): at most this many failed attempts per account per hour.
MAX_FAILURES_PER_HOUR = 100
SUPPORT_CONTACT_MAX = 200
LOCKOUT_KEYS = ("lockout_account_failures", "lockout_ip_failures", "lockout_window_minutes")


def normalize(key: str, raw: str, old: str) -> str:
    """The value to store for ``key`` (``old``: its value now), or InvalidInput with a message for that field."""
    from portal.services import policy  # policy uses these rules; the parsers are policy's

    raw = raw.strip()
    if key == "force_2fa":
        return _one_of(raw, FORCE_MODES)
    if key in ("mail_requires_app_password", "risk_step_up"):
        return _one_of(raw, ON_OFF)
    if key in ("enabled_methods", "admin_methods"):
        return ",".join(policy.parse_methods(raw))
    if key == "trusted_networks":
        return ",".join(str(network) for network in policy.parse_networks(raw.replace("\n", ",")))
    if key == "campus_networks":
        entries = policy.parse_campus_networks(raw)
        return "; ".join(f"{network} {label}".strip() for network, label in entries)
    if key in RANGES:
        return str(_whole_number(raw, *RANGES[key]))
    if key == "force_2fa_deadline":
        return _deadline(raw, old)
    if key == "support_contact":
        return _support_contact(raw)
    raise InvalidInput(_("未知的策略项:%(key)s", key=key))


def _one_of(raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise InvalidInput(_("请从给出的选项中选择"))
    return raw


def _whole_number(raw: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", raw):
        raise InvalidInput(_("请输入 %(low)s 到 %(high)s 之间的整数", low=low, high=high))
    number = int(raw)
    if not low <= number <= high:
        raise InvalidInput(_("请输入 %(low)s 到 %(high)s 之间的整数", low=low, high=high))
    return number


def _deadline(raw: str, old: str) -> str:
    """'' (none) or a date YYYY-MM-DD in Beijing time; a new one may not lie in the past."""
    if not raw:
        return ""
    try:
        day = date.fromisoformat(raw) if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw) else None
    except ValueError:
        day = None
    if day is None:
        raise InvalidInput(_("请输入日期,格式为 2026-09-30"))
    if raw != old and raw < local(utcnow(), "%Y-%m-%d"):
        raise InvalidInput(_("截止日期不能早于今天"))
    return day.isoformat()


def _support_contact(raw: str) -> str:
    text = " ".join(raw.split())  # one line: it is shown inside sentences
    if not text:
        raise InvalidInput(_("请填写支持联系方式"))
    if len(text) > SUPPORT_CONTACT_MAX:
        raise InvalidInput(_("支持联系方式最多 %(count)s 个字符", count=SUPPORT_CONTACT_MAX))
    return text


def cross_errors(values: dict[str, str], changed: set[str]) -> dict[str, str]:
    """The rules across keys, for the merged policy ``values`` (checked when one of their keys ``changed``)."""
    if not changed & set(LOCKOUT_KEYS):
        return {}
    try:
        account, ip, window = (int(values[key]) for key in LOCKOUT_KEYS)
    except ValueError:
        return {}
    errors = {}
    if account * 60 > MAX_FAILURES_PER_HOUR * window:
        errors["lockout_account_failures"] = _(
            "每个账号每小时最多允许 %(max)s 次失败:失败次数 × (60 ÷ 统计时长)= %(count)s,请减少次数或延长统计时长",
            max=MAX_FAILURES_PER_HOUR,
            count=account * 60 // window,
        )
    if ip < account:
        errors["lockout_ip_failures"] = _("每个 IP 的失败次数不能少于每个账号的失败次数(%(count)s)", count=account)
    return errors
