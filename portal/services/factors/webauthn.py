"""安全密钥: WebAuthn security keys and passkeys (up to 10 per account, each named by the user). The
ceremonies are ``security_keys``; here the keys are one factor: the first key binds it, 添加安全密钥
adds more (after a fresh verification), 删除 removes one (the last one unbinds the factor), 修改
replaces them all by a new one. Offered first at the second step when bound."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.db import db, lock_rows
from portal.models import Factor, LoginSession, SecurityKey, User
from portal.services import audit, revocation, security_keys, step_up
from portal.services.client import Client
from portal.services.errors import NotFound
from portal.services.factors import binding
from portal.services.factors.base import FactorMethod, Form

METHOD = "webauthn"
ASSERT = "assert"  # the purpose of this session's sign-in challenge (login, 解绑, 修改, 安全验证 alike)


@dataclass
class KeyEnrollment:
    purpose: str  # bind | rebind | add
    options: str  # JSON for navigator.credentials.create()
    name: str = ""


class WebAuthn(FactorMethod):
    key = METHOD
    label = _l("安全密钥")
    channels = ("key",)
    several = True
    login_hint = _l("插入安全密钥并触摸它,或使用本设备的通行密钥(指纹、面容或 PIN)")
    dialog_hint = _l("使用安全密钥验证")
    challenge_partial = "security/challenge/_webauthn.html"

    def unavailable(self) -> str | None:
        return security_keys.unavailable_reason()

    def begin_bind(self, session, user, purpose, client, form=None) -> KeyEnrollment:
        ceremony = "rebind" if purpose == "rebind" else "bind"
        options = security_keys.registration_options(session, user, ceremony)
        return KeyEnrollment(purpose, options, (form or {}).get("name", "")[:32])

    def bind(self, session, user, purpose, form: Form, client) -> Factor:
        ceremony = "rebind" if purpose == "rebind" else "bind"
        fields = security_keys.finish_registration(
            session, user, form.get("credential", ""), form.get("name", ""), purpose=ceremony
        )
        with db.atomic():
            if purpose == "add":
                factor = Factor.of(user, METHOD)
                security_keys.add_key(user, fields)
                audit.record("security_key_added", user=user, method=METHOD, client=client, detail=fields["name"])
            else:
                factor = binding.commit_binding(
                    session, user, METHOD, client, replaces=purpose == "rebind", label=fields["name"]
                )
                security_keys.add_key(user, fields)
        return factor

    def check(self, factor, raw, session) -> None:
        security_keys.verify_assertion(session, factor.user, raw or "", ASSERT)

    def challenge_context(self, session, user) -> dict:
        return {"options": security_keys.authentication_options(session, user, ASSERT)}

    def credentials(self, user: User) -> list[SecurityKey]:
        return security_keys.keys_of(user)

    def remove_credential(self, session: LoginSession, user: User, key_id: int, client: Client) -> None:
        """删除 one key after a fresh verification; the last one goes with the factor (解绑)."""
        step_up.require(session, "remove-key")
        with db.atomic():
            lock_rows(User.select(User.id).where(User.id == user.id))
            keys = security_keys.keys_of(user)
            if not any(key.id == key_id for key in keys):
                raise NotFound(_("该安全密钥不存在或已删除"))
            if len(keys) == 1:
                binding.check_removable(user, METHOD)
                binding.remove(user, METHOD, client, "step-up", session)
                return
            gone = security_keys.remove_key(user, key_id)
            revocation.revoke_access(user, "security key removed", client, keep=session)
            audit.record("security_key_removed", user=user, method=METHOD, client=client, detail=gone.name)

    def on_removed(self, factor) -> None:
        SecurityKey.delete().where(SecurityKey.user == factor.user_id).execute()

    def describe(self, factor) -> str:
        return _("、").join(key.name for key in security_keys.keys_of(factor.user))
