"""Can this PORTAL_DATA_KEY read what the database holds? (`flask --app wsgi doctor`, and `init-db`)

A wrong or lost data key makes every encrypted secret unreadable (TOTP and App seeds, 备用邮箱
addresses) and every stored token hash unmatchable (sessions, app passwords). Logins then fail
closed; this tells the operator why before users do. The database remembers an HMAC of the key it
was set up with, so a wrong key shows even while no secret is stored yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal import crypto
from portal.models import Enrollment, Factor, HardwareToken, MailedCode, Setting, WeChatUser

KEY_CHECK = "data_key_check"
# Encrypted columns: (what the operator reads, model, field).
ENCRYPTED = (
    ("second factors", Factor, Factor.secret),
    ("factors being bound", Enrollment, Enrollment.secret),
    ("sent codes' addresses", MailedCode, MailedCode.address),
    ("hardware tokens' seeds", HardwareToken, HardwareToken.secret),
    ("mini-program session keys", WeChatUser, WeChatUser.session_key),
)


@dataclass
class Report:
    key_matches: bool  # the key is the one the database was set up with (True when it knew none yet)
    unreadable: dict[str, int]  # kind → rows this key cannot decrypt

    @property
    def ok(self) -> bool:
        return self.key_matches and not any(self.unreadable.values())

    def lines(self) -> list[str]:
        if self.ok:
            return ["PORTAL_DATA_KEY reads every stored secret"]
        lines = [] if self.key_matches else ["PORTAL_DATA_KEY is not the key this database was set up with"]
        lines += [
            f"{count} {kind} cannot be decrypted with PORTAL_DATA_KEY"
            for kind, count in self.unreadable.items()
            if count
        ]
        return lines + ["restore the right PORTAL_DATA_KEY; affected users cannot log in with those factors until then"]


def check() -> Report:
    """Compare the key with the database's record of it, and try every encrypted value."""
    unreadable = {}
    for kind, model, column in ENCRYPTED:
        values = model.select(column).where(column != "").tuples()
        unreadable[kind] = sum(1 for (value,) in values if not crypto.decrypts(value))
    row = Setting.get_or_none(Setting.key == KEY_CHECK)
    return Report(key_matches=row is None or row.value == _fingerprint(), unreadable=unreadable)


def remember_key() -> None:
    """Record which key this database is used with (once: a later key is compared with it)."""
    Setting.insert(key=KEY_CHECK, value=_fingerprint()).on_conflict_ignore().execute()


def _fingerprint() -> str:
    return crypto.token_hash("portal data key check")
