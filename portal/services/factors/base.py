"""What every second-factor method is: the verbs the pages, the login step and admin reset call.

A method is one object of a ``FactorMethod`` subclass, listed once in ``factors.METHODS``. Nothing
outside its module tests its key: the settings row, the bind dialog (``bind_partial``), the login
step and the verification dialogs (``challenge_partial``) and the wording all come from here.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import Factor, LoginSession, User
from portal.services.client import Client
from portal.services.errors import InvalidCode, NotAllowed

# Stable error codes of the binding and verification flows (the JSON APIs send them too).
ALREADY_BOUND = "already_bound"
GRANT_EXPIRED = "grant_expired"
CODE_REUSED = "code_reused"
NOT_BOUND = "not_bound"
SESSION_NOT_FULL = "session_not_full"

Form = Mapping[str, str]


class FactorMethod:
    """One second-factor method. Subclasses set the wording and override the verbs they support."""

    key = ""
    label = ""
    self_service = False  # the manual's recommended methods: offered without the admin enabling them
    channels: tuple[str, ...] = ("code",)  # how a verification goes: push (App), qr (a phone scans), code
    login_hint = ""  # the login page: where the user finds the code
    dialog_hint = ""  # 解绑 / 修改 / 安全验证 dialogs, after "解绑…前,"
    code_label = _l("验证码")
    code_inputmode = "numeric"  # the phone keyboard for the code field
    sends_code = False  # a code is sent on request (发送验证码): 备用邮箱, 短信
    code_minutes = 0  # how long a sent code stays valid
    qr_note = ""  # under the login QR: what the choices on the phone mean
    several = False  # more than one credential per account (安全密钥)

    @property
    def bind_partial(self) -> str:
        return f"security/bind/_{self.key}.html"

    challenge_partial = ""  # a challenge that is no code form (channel "key"): its partial, for both pages

    def assigned_to(self, user: User) -> bool:
        """Whether the admin gave this user something of this method (a hardware token): offered then."""
        return False

    def unavailable(self) -> str | None:
        """Why this deployment cannot offer the method (no mail server, no domain name), or None."""
        return None

    def begin_bind(self, session: LoginSession, user: User, purpose: str, client: Client, form: Form | None):
        """What the bind dialog shows: opened (``form`` None) or again after a refused step (its fields);
        None when that bind has expired meanwhile."""
        raise NotAllowed(_("该验证方式不能在网页上绑定"))

    def bind(self, session: LoginSession, user: User, purpose: str, form: Form, client: Client):
        """One step of the bind dialog: the new Factor once bound, else what the dialog shows next."""
        raise NotAllowed(_("该验证方式不能在网页上绑定"))

    def send_bind_code(self, session: LoginSession, user: User, purpose: str, form: Form, client: Client):
        """发送验证码 to the address being bound (``sends_code`` methods); what the dialog shows next."""
        raise NotAllowed(_("该验证方式无需发送验证码"))

    def check(self, factor: Factor, raw: str | None, session: LoginSession | None) -> None:
        """Raise InvalidCode unless ``raw`` proves ``factor`` now; a one-time thing is spent here."""
        raise InvalidCode(_("该验证方式不支持验证码"))

    def send_code(self, session: LoginSession, user: User, client: Client) -> str:
        """Send a verification code to the bound address (``sends_code`` methods); where it went, masked."""
        raise NotAllowed(_("该验证方式无需发送验证码"))

    def challenge_context(self, session: LoginSession, user: User) -> dict:
        """Extra values the challenge partial shows (where the code was sent, …)."""
        return {}

    def credentials(self, user: User) -> list:
        """The credentials of a ``several`` method (安全密钥), each with id, name, created_at, last_used_at."""
        return []

    def remove_credential(self, session: LoginSession, user: User, credential_id: int, client: Client) -> None:
        """删除 one credential of a ``several`` method (the last one unbinds it)."""
        raise NotAllowed(_("该验证方式没有可单独删除的凭据"))

    def on_removed(self, factor: Factor) -> None:
        """Drop what rested on a factor that was unbound, replaced or reset (inside that transaction)."""

    def describe(self, factor: Factor) -> str:
        """The bound factor on the settings row and the admin page (a device, an address, a serial)."""
        return factor.label

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"
