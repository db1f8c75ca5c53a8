"""Mail accounts: create, import, password, enable/disable, reset of second factors."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import peewee
from flask_babel import gettext as _

from portal.db import db
from portal.models import AppPassword, Enrollment, Factor, RecoveryCode, User, utcnow
from portal.services import audit, passwords, revocation, throttle
from portal.services.client import Client
from portal.services.errors import Conflict, InvalidInput, NotAllowed, NotFound

ACCOUNT_RE = re.compile(r"^[a-z0-9._%+-]{1,64}@[a-z0-9-]+(\.[a-z0-9-]+)+$", re.ASCII)
CSV_COLUMNS = ("account", "name", "password", "admin")
TRUE_WORDS = {"1", "true", "yes", "y", "是"}  # the admin column of an import file (data: left untranslated)


def normalize(account: str) -> str:
    """Accounts are full mail addresses, compared case-insensitively."""
    return account.strip().lower()


def mask(value: str) -> str:
    """z***n@mail.example.edu.cn, or the ends of an id."""
    local, at, domain = value.partition("@")
    if not at:
        return f"{value[:4]}…{value[-4:]}" if len(value) > 8 else value
    shown = local[0] + "***" + (local[-1] if len(local) > 1 else "")
    return f"{shown}@{domain}"


def validate_account(account: str) -> str:
    account = normalize(account)
    if not ACCOUNT_RE.match(account) or len(account) > 254:
        raise InvalidInput(_("邮箱账号格式不正确: %(account)s", account=repr(account)))
    return account


def get(account: str) -> User:
    user = User.by_account(normalize(account))
    if user is None:
        raise NotFound(_("账号不存在: %(account)s", account=account))
    return user


def create(account: str, password: str, name: str = "", admin: bool = False) -> User:
    """Create one account with an argon2id password hash."""
    account = validate_account(account)
    password_hash = passwords.hash_password(password)
    try:
        with db.atomic():
            user = User.create(
                account=account, name=name.strip()[:100], password_hash=password_hash, role="admin" if admin else ""
            )
    except peewee.IntegrityError as exc:
        raise Conflict(_("账号已存在: %(account)s", account=account)) from exc
    audit.record("user_created", user=user, detail="admin" if admin else "")
    return user


@dataclass
class ImportRow:
    line: int
    account: str
    name: str
    password: str
    admin: bool


def parse_csv(text: str) -> tuple[list[ImportRow], list[str]]:
    """Rows and errors (by line number) of an account CSV with a header row."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = {"account", "password"} - set(header)
    if missing:
        return [], [f"line 1: missing column(s) {', '.join(sorted(missing))}; expected {', '.join(CSV_COLUMNS)}"]
    reader.fieldnames = header
    rows, errors, seen = [], [], set()
    for record in reader:
        line = reader.line_num
        try:
            account = validate_account(record.get("account") or "")
            passwords.check_strength(record.get("password") or "")
            if account in seen:
                raise InvalidInput(_("账号在文件中重复: %(account)s", account=account))
            if User.by_account(account):
                raise InvalidInput(_("账号已存在: %(account)s", account=account))
        except InvalidInput as exc:
            errors.append(f"line {line}: {exc.message}")
            continue
        seen.add(account)
        admin = (record.get("admin") or "").strip().lower() in TRUE_WORDS
        rows.append(ImportRow(line, account, (record.get("name") or "").strip(), record["password"], admin))
    return rows, errors


def import_csv(text: str, directory_holds_passwords: bool = False) -> list[User]:
    """Import every row or none: any bad row raises InvalidInput listing all errors by line."""
    if directory_holds_passwords:
        raise NotAllowed(
            "PORTAL_PASSWORD_BACKEND is not local: passwords live in the directory and accounts appear at their"
            " first login; `user create` makes a break-glass account with a local password"
        )
    rows, errors = parse_csv(text)
    if errors:
        raise InvalidInput("\n".join(errors))
    hashed = [(row, passwords.hash_password(row.password)) for row in rows]
    try:
        with db.atomic():
            users = [
                User.create(
                    account=row.account, name=row.name[:100], password_hash=h, role="admin" if row.admin else ""
                )
                for row, h in hashed
            ]
    except peewee.IntegrityError as exc:  # an account created meanwhile: the whole import is undone
        raise Conflict(_("导入期间有账号已被创建,未导入任何账号,请重新导入")) from exc
    audit.record("users_imported", detail=f"{len(users)} accounts")
    return users


def set_password(account: str, password: str, client: Client | None = None) -> User:
    """Change the password; ends sessions, trusted devices and app passwords (a possible compromise)."""
    user = get(account)
    if not user.password_hash:
        raise NotAllowed(
            _("%(account)s 的密码由目录(PORTAL_PASSWORD_BACKEND)管理,请在目录中修改", account=user.account)
        )
    with db.atomic():
        User.update(password_hash=passwords.hash_password(password), password_changed_at=utcnow()).where(
            User.id == user.id
        ).execute()
        revocation.revoke_access(user, "password_changed", client)
        revoked = AppPassword.delete().where(AppPassword.user == user).execute()
        audit.record("password_changed", user=user, client=client, detail=f"{revoked} app password(s) revoked")
    return user


def reset_2fa(account: str, reason: str, by: User | None = None, client: Client | None = None) -> int:
    """Admin support: remove all second factors (lost phone); the user binds again."""
    if not reason.strip():
        raise InvalidInput(_("请填写重置原因"))
    user = get(account)
    with db.atomic():
        factors = list(Factor.select().where(Factor.user == user))
        removed = Factor.delete().where(Factor.user == user).execute()
        Enrollment.delete().where(Enrollment.user == user).execute()
        RecoveryCode.delete().where(RecoveryCode.user == user).execute()  # 备用码 of the reset factors
        revocation.revoke_access(user, "2fa_reset", client, removed=factors)
        detail = _detail(f"{removed} factor(s)", f"reason: {reason}", _by(by))
        audit.record("2fa_reset", user=user, client=client, detail=detail)
    return removed


def set_language(user: User, language: str) -> None:
    """The language the account's pages and notices are written in ('' = the browser's)."""
    User.update(language=language).where(User.id == user.id).execute()
    user.language = language


def set_role(
    account: str, role: str, by: User | None = None, client: Client | None = None, find=None, reason: str = ""
) -> User:
    """Give an account a console role (roles.ROLES; "" = none); a directory user without a row yet gets
    one (``find``: the directory). Nobody takes the admin role from themselves (the last admin's lockout)."""
    from portal.services import roles

    role = role.strip()
    if role not in ("", *roles.ROLES):
        raise InvalidInput(_("未知的角色: %(role)s", role=role), code="unknown_role")
    user = User.by_account(normalize(account))
    if user is None and find is not None:
        user = find(account)
    if user is None:
        raise NotFound(_("账号不存在: %(account)s", account=account))
    if by is not None and by.id == user.id and role != roles.ADMIN:
        raise NotAllowed(_("不能取消自己的管理员角色"), code="own_role")
    User.update(role=role).where(User.id == user.id).execute()
    change = f"{user.role or 'none'} -> {role or 'none'}"
    audit.record("user_role_changed", user=user, client=client, detail=_detail(change, _by(by), _reason(reason)))
    return User.get_by_id(user.id)


def _reason(reason: str) -> str:
    return f"reason: {reason.strip()[:200]}" if reason.strip() else ""


def unlock(account: str, by: User | None = None, client: Client | None = None, reason: str = "") -> int:
    user = get(account)
    cleared = throttle.unlock(user.account)
    detail = _detail(f"{cleared} counter(s)", _by(by), _reason(reason))
    audit.record("user_unlocked", user=user, client=client, detail=detail)
    return cleared


def set_disabled(
    account: str, disabled: bool, by: User | None = None, client: Client | None = None, reason: str = ""
) -> User:
    user = get(account)
    if by is not None and by.id == user.id and disabled:
        raise NotAllowed(_("不能停用自己的账号"), code="own_account")
    with db.atomic():
        User.update(disabled=disabled).where(User.id == user.id).execute()
        if disabled:
            revocation.revoke_access(user, "disabled", client)
        event = "user_disabled" if disabled else "user_enabled"
        audit.record(event, user=user, client=client, detail=_detail(_by(by), _reason(reason)))
    return get(account)


def _by(admin: User | None) -> str:
    """The acting admin, for the audit detail (commands run on the server name nobody)."""
    return f"by {admin.account}" if admin else ""


def _detail(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def set_policy(
    account: str,
    methods: str | None = None,
    force: bool | None = None,
    by: User | None = None,
    client: Client | None = None,
    reason: str = "",
) -> User:
    """Per-user policy: extra methods (e.g. totp,email) and listed forced binding."""
    from portal.services import policy

    user = get(account)
    changes = {}
    if methods is not None:
        changes[User.extra_methods] = ",".join(policy.parse_methods(methods))
    if force is not None:
        changes[User.force_2fa] = force
    if changes:
        User.update(changes).where(User.id == user.id).execute()
        change = str({f.name: v for f, v in changes.items()})
        audit.record("user_policy_changed", user=user, client=client, detail=_detail(change, _by(by), _reason(reason)))
    return get(account)


def listing() -> list[tuple[User, list[str]]]:
    """Every account with the methods it has bound."""
    bound: dict[int, list[str]] = {}
    for factor in Factor.select(Factor.user, Factor.method):
        bound.setdefault(factor.user_id, []).append(factor.method)
    return [(u, bound.get(u.id, [])) for u in User.select().order_by(User.account)]
