"""Second-factor methods: one module per method behind one interface (``base.FactorMethod``), listed
in ``METHODS``; ``binding`` holds what they share. Pages, the login step, admin reset, reports and
housekeeping iterate ``METHODS`` instead of testing method names.

Adding a method: a module here with a ``FactorMethod`` subclass, one line in ``METHODS``, and its bind
dialog partial ``templates/security/bind/_<key>.html`` (see the README).
"""

from __future__ import annotations

from portal.services.factors.app import App
from portal.services.factors.base import FactorMethod
from portal.services.factors.email import Email
from portal.services.factors.sms import Sms
from portal.services.factors.token import Token
from portal.services.factors.totp import Totp
from portal.services.factors.webauthn import WebAuthn
from portal.services.factors.wechat import WeChat

# The rows of 二次验证设置, in the manual's order.
METHODS: dict[str, FactorMethod] = {m.key: m for m in (App(), Totp(), Email(), WeChat(), Sms(), Token(), WebAuthn())}

from portal.services.factors.binding import (  # noqa: E402  (the methods above come first)
    LAST_FACTOR,
    Bound,
    MethodRow,
    Pending,
    admin_only,
    authorize_change,
    begin_bind,
    bind,
    binding_purpose,
    bound_methods,
    check_removable,
    choices,
    commit_binding,
    commit_scanned_binding,
    default_choices,
    grant_change,
    has_grant,
    method,
    offered,
    overview,
    remove,
    reverify,
    row_id,
    send_bind_code,
    send_code,
    set_default,
    unbind,
    use_grant,
    verify,
)

__all__ = [
    "LAST_FACTOR",
    "METHODS",
    "Bound",
    "FactorMethod",
    "MethodRow",
    "Pending",
    "admin_only",
    "authorize_change",
    "begin_bind",
    "bind",
    "binding_purpose",
    "bound_methods",
    "check_removable",
    "choices",
    "commit_binding",
    "commit_scanned_binding",
    "default_choices",
    "grant_change",
    "has_grant",
    "method",
    "offered",
    "overview",
    "remove",
    "reverify",
    "row_id",
    "send_bind_code",
    "send_code",
    "set_default",
    "unbind",
    "use_grant",
    "verify",
]
