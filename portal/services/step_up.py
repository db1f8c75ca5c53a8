"""Step-up: a fresh proof of a bound factor before a step that creates or removes long-lived access.

生成专用密码 (an IMAP/SMTP credential that lasts until deleted), 全部清除 of trusted devices and
binding another factor need the session's last second-factor proof to be younger than
PORTAL_STEP_UP_MINUTES. A session that skipped the second step on a trusted device or from a trusted
network has no such proof; a user with no factor bound has nothing to prove (and no step to skip).
"""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import LoginSession
from portal.services import sessions
from portal.services.errors import DomainError, NotFound

# What may ask for it (the ticket's target for a phone approval) → how the dialog names it; and
# "bind-<method>" for binding another method (named by the method).
ACTIONS = {
    "app-password": _l("生成专用密码"),
    "trusted-devices": _l("清除全部信任设备"),
    "recovery-codes": _l("生成备用码"),
    "remove-key": _l("删除安全密钥"),
    "secure-account": _l("退出其他所有设备"),
    "admin": _l("管理操作"),  # any change made on /admin
}


def describe(action: str) -> str:
    """How the dialog names ``action``; NotFound for an unknown one."""
    from portal.services.factors import METHODS  # binding a method asks for step-up

    if action in ACTIONS:
        return str(ACTIONS[action])
    key = action.removeprefix("bind-")
    if action.startswith("bind-") and key in METHODS:
        return _("绑定%(method)s", method=METHODS[key].label)
    raise NotFound(_("页面不存在"))


class StepUpRequired(DomainError):
    """The session must prove a bound factor again before ``action``."""

    code = "step_up_required"
    status = 403

    def __init__(self, action: str):
        super().__init__(_("%(action)s前,请先完成安全验证", action=describe(action)))
        self.action = action


def needed(session: LoginSession) -> bool:
    """Whether a sensitive step must first ask this session for a fresh verification."""
    from portal.services import factors  # the methods ask for step-up

    has_factor = bool(factors.choices(session.user))  # one this user may verify with
    return has_factor and not sessions.freshly_verified(session)


def require(session: LoginSession, action: str) -> None:
    """Raise StepUpRequired unless this session may take ``action`` now."""
    check_action(action)
    if needed(session):
        raise StepUpRequired(action)


def check_action(action: str) -> None:
    describe(action)
