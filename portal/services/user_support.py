"""用户支持: find an account, see everything the support desk needs of it, and act on it.

What the page shows is read here (``account_summary``); the actions it offers that are not plain
account changes (``accounts``) are here too: 退出所有会话 and 移除信任设备. Every action of the console
names a reason (工单号 …), checked by ``require_reason`` and kept in the audit detail with "by <admin>".
Secrets never leave: app passwords show their name and use, sessions and trusted devices their browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _

from portal.db import db
from portal.models import AppPassword, AuditEvent, Factor, LoginSession, TrustedDevice, User
from portal.oidc import tokens
from portal.services import accounts, audit, factors, policy, sessions, throttle, trust
from portal.services.client import Client
from portal.services.errors import InvalidInput, NotAllowed
from portal.services.reports import LOCK_SCOPES

SEARCH_LIMIT = 20
EVENT_LIMIT = 15
REASON_MAX = 200


@dataclass(frozen=True)
class BoundFactor:
    key: str
    label: str  # the method, e.g. 第三方 OTP
    description: str  # which device / address / serial (METHODS[key].describe)
    bound_at: datetime
    last_used: datetime | None


@dataclass(frozen=True)
class MethodChoice:
    """A method the admin may enable for this one user (not enabled for everyone)."""

    key: str
    label: str
    enabled: bool  # in the user's extra methods
    unavailable: str | None  # why this deployment cannot offer it now


@dataclass
class AccountSummary:
    """What the support desk sees of one account before helping its owner."""

    user: User
    factors: list[BoundFactor]
    must_bind: bool
    app_passwords: list[AppPassword]
    sessions: list[LoginSession]  # live, fully logged-in browser sessions, newest first
    trusted_devices: list[TrustedDevice]
    failures: dict[str, int]  # throttle scope → failures of this account in the current window
    locks: dict[str, datetime]  # label of a locked scope → when the lock ends
    method_choices: list[MethodChoice]
    force_mode: str  # the global policy force_2fa: off | all | listed
    events: list[AuditEvent]

    @property
    def methods(self) -> list[str]:
        """Labels of the bound methods."""
        return [factor.label for factor in self.factors]


def find_accounts(query: str) -> list[User]:
    """Accounts whose address or name starts with ``query`` (case-insensitive), by address; at most 20.

    The name is the one the directory gave at provisioning (refreshed at each login) or the local one.
    """
    prefix = query.strip()[:100]
    if not prefix:
        return []
    matches = User.select().where(User.account.startswith(prefix) | User.name.startswith(prefix))  # LIKE, escaped
    return list(matches.order_by(User.account).limit(SEARCH_LIMIT))


def account_summary(account: str) -> AccountSummary:
    user = accounts.get(account)
    locks = {label: throttle.locked_until(scope, user.account, "") for scope, label in LOCK_SCOPES.items()}
    return AccountSummary(
        user=user,
        factors=bound_factors(user),
        must_bind=policy.must_bind(user),
        app_passwords=AppPassword.of_user(user.id),
        sessions=live_sessions(user),
        trusted_devices=trust.active(user),
        failures={scope: throttle.failures(scope, user.account) for scope in LOCK_SCOPES},
        locks={label: until for label, until in locks.items() if until is not None},
        method_choices=method_choices(user),
        force_mode=policy.get("force_2fa"),
        events=audit.recent(EVENT_LIMIT, account=user.account),
    )


def bound_factors(user: User) -> list[BoundFactor]:
    rows = []
    for factor in Factor.of_user(user.id):
        method = factors.METHODS.get(factor.method)
        if method is None:  # a method this release no longer has
            continue
        label, description = str(method.label), method.describe(factor)
        rows.append(BoundFactor(factor.method, label, description, factor.created_at, factor.last_used_at))
    return rows


def live_sessions(user: User) -> list[LoginSession]:
    """The user's live browser sessions past the second step (a dead one found here is ended)."""
    candidates = (
        LoginSession.select(LoginSession, User)
        .join(User)
        .where((LoginSession.user == user) & LoginSession.ended_at.is_null() & (LoginSession.stage == sessions.FULL))
        .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())
    )
    return [row for row in candidates if sessions.is_live(row)]


def choosable_methods() -> list[str]:
    """Methods an admin may enable per user: neither offered to all (self-service) nor enabled globally."""
    enabled = set(policy.parse_methods(policy.get("enabled_methods")))
    return [key for key, m in factors.METHODS.items() if not m.self_service and key not in enabled]


def method_choices(user: User) -> list[MethodChoice]:
    extra = set(policy.parse_methods(user.extra_methods))
    return [
        MethodChoice(key, str(factors.METHODS[key].label), key in extra, factors.METHODS[key].unavailable())
        for key in choosable_methods()
    ]


# --- actions ------------------------------------------------------------------------------------


def require_reason(raw: str | None) -> str:
    """The reason a console action names (e.g. a ticket number): required, at most 200 characters."""
    reason = " ".join((raw or "").split())
    if not reason:
        raise InvalidInput(_("请填写操作原因(如工单号)"), code="reason_required")
    if len(reason) > REASON_MAX:
        raise InvalidInput(_("操作原因最多 %(max)s 个字符", max=REASON_MAX), code="reason_too_long")
    return reason


def check_may_act(actor: User | None, account: str) -> None:
    """Staff accounts (any console role) are acted on by admins only: a helpdesk account cannot disable,
    reset or sign out an admin (nor another staff member). ``actor`` None: the server's CLI."""
    from portal.services import roles

    target = User.by_account(accounts.normalize(account))
    if actor is not None and target is not None and target.is_staff and not roles.allows(actor, roles.ROLE_CHANGE):
        raise NotAllowed(_("管理后台账号只能由管理员操作"), code="staff_account")


def end_sessions(
    account: str, reason: str, by: User | None = None, client: Client | None = None, keep: LoginSession | None = None
) -> int:
    """退出所有会话: end every browser session of the account (but ``keep``, the admin's own) and the
    single sign-on tokens issued in them; its next request is refused. Returns how many ended."""
    user = accounts.get(account)
    with db.atomic():
        count = sessions.end_all(user, "ended_by_admin", keep=keep)
        tokens.revoke_user(user, keep=keep)
        detail = accounts._detail(f"count={count}", accounts._by(by), accounts._reason(reason))
        audit.record("user_sessions_ended", user=user, client=client, detail=detail)
    return count


def remove_trusted_devices(
    account: str, reason: str, by: User | None = None, client: Client | None = None, device_id: int | None = None
) -> int:
    """移除信任设备: one (``device_id``) or all; the browser asks for the second step again."""
    user = accounts.get(account)
    note = accounts._detail(accounts._by(by), accounts._reason(reason))
    if device_id is None:
        return trust.revoke_all(user, accounts._detail("removed by admin", note), client)
    trust.revoke(user, device_id, client, note=note)  # NotFound: not this user's, or gone already
    return 1


def set_extra_methods(
    account: str, chosen: list[str], reason: str, by: User | None = None, client: Client | None = None
) -> User:
    """The methods enabled for this user beyond the global policy. Only ``choosable_methods`` may be
    chosen; extra methods stored earlier that are now enabled for everyone are kept (a later policy
    change then leaves this user's access as the admin set it)."""
    choosable = choosable_methods()
    unknown = [key for key in chosen if key not in choosable]
    if unknown:
        raise InvalidInput(_("不能为该用户单独开启的验证方式: %(methods)s", methods=", ".join(unknown)))
    user = accounts.get(account)
    kept = [key for key in policy.parse_methods(user.extra_methods) if key not in choosable]
    methods = [*kept, *(key for key in choosable if key in chosen)]
    return accounts.set_policy(account, methods=",".join(methods), by=by, client=client, reason=reason)
