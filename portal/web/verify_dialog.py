"""The fresh-verification dialog shared by 解绑, 修改 and step-up (安全验证): one view-model, one partial.

Each caller names its blueprint, whose ``verify_form`` / ``verify_submit`` / ``verify_send_code`` /
``verify_push`` routes take the same URL arguments; the partial is ``security/_verify.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import g, url_for
from flask_babel import gettext as _

from portal.services import approvals, factors
from portal.services.factors import FactorMethod


@dataclass
class Links:
    """The URLs of one verification's routes (the blueprint's verify_* endpoints with ``args``); the
    login page's too. ``field`` names the chosen method in its forms and links (login: "method")."""

    blueprint: str
    args: dict = field(default_factory=dict)
    field: str = "via"

    def form(self, via: str, mode: str | None = None) -> str:
        return url_for(f"{self.blueprint}.verify_form", **self.args, **{self.field: via}, mode=mode or None)

    def submit(self) -> str:
        return url_for(f"{self.blueprint}.verify_submit", **self.args)

    def send_code(self) -> str:
        return url_for(f"{self.blueprint}.verify_send_code", **self.args)

    def push(self) -> str:
        return url_for(f"{self.blueprint}.verify_push", **self.args)


@dataclass
class VerifyDialog:
    title: str  # e.g. "微信验证", "安全验证"
    before: str  # what the verification is for: "解绑微信前"
    via: FactorMethod
    others: list[FactorMethod]
    challenge: approvals.Challenge
    links: Links
    cancel_url: str
    poll: str | None = None
    extra: dict = field(default_factory=dict)  # the method's own values (where a code was sent, …)
    intro: str = ""  # why it is asked, when that is not obvious (step-up)


def build(
    links: Links,
    before: str,
    purpose: str,
    target: str,
    cancel_url: str,
    via: str = "",
    mode: str = "",
    resend: bool = False,
    title: str = "",
    intro: str = "",
) -> VerifyDialog:
    """The dialog for verifying with ``via`` (default: the preferred bound method) in ``mode``."""
    usable = {m.key: m for m in factors.choices(g.user)}
    via = via if via in usable else approvals.preferred(list(usable))
    challenge = approvals.challenge(g.login, g.user, via, mode, g.client, purpose, target, resend)
    return VerifyDialog(
        title=title or _("%(method)s验证", method=usable[via].label),
        before=before,
        via=usable[via],
        others=[m for key, m in usable.items() if key != via],
        challenge=challenge,
        links=links,
        cancel_url=cancel_url,
        poll=url_for("security.scan_poll", ticket_id=challenge.new.ticket.id) if challenge.new else None,
        extra=usable[via].challenge_context(g.login, g.user),
        intro=intro,
    )
