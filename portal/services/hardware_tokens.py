"""动态口令 (hardware OTP tokens): import seed files, assign tokens to accounts, check their codes.

Codes are used at most once (invariant 3): HOTP moves its counter, TOTP its last used step, each by a
conditional UPDATE, so that of two requests racing with one code only one wins, on any worker or host.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass, field

import peewee
import pyotp
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import crypto
from portal.db import db
from portal.models import Factor, HardwareToken, User, utcnow
from portal.services import accounts, audit, revocation, token_files
from portal.services.errors import Conflict, InvalidCode, InvalidInput, NotAllowed, NotFound

HOTP_WINDOW = 10  # a code up to this many presses ahead of the last used one is accepted
RESYNC_WINDOW = 1000  # two consecutive codes this far ahead resynchronise a token left unused
TOTP_DRIFT_STEPS = 1  # the previous and the next time step are accepted too
DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}

NOT_FOUND = _l("未找到该序列号的动态口令")
ASSIGNED_ELSEWHERE = _l("该动态口令已分配给其他账号")
WRONG_CODE = _l("动态口令错误,请重新输入")
REUSED = _l("该动态口令已使用,请按键生成新的动态口令")
RESYNC_HINT = _l("动态口令错误:如令牌长期未用,请输入连续两个动态口令以同步")
RESYNC_FAILED = _l("两个动态口令不连续或不正确")


@dataclass(frozen=True)
class Outcome:
    """What became of one entry of an import file."""

    serial: str
    status: str  # imported | skipped | invalid
    reason: str = ""
    where: str = ""  # where in the file ("line 3", "key 2"): for invalid entries, whose serial may be unusable


@dataclass
class ImportReport:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def totals(self) -> dict[str, int]:
        return {status: self.count(status) for status in ("imported", "skipped", "invalid")}


def import_file(
    path_or_bytes: str | os.PathLike | bytes,
    fmt: str = "pskc",
    key_hex: str | None = None,
    password: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import a PSKC or CSV seed file: every valid new token in one transaction (none on a dry run)."""
    entries = token_files.read(_read_bytes(path_or_bytes), fmt, key_hex, password)
    report = ImportReport(dry_run=dry_run)
    try:
        with db.atomic():
            present = _present_serials([e.serial for e in entries])
            seen: set[str] = set()
            new: list[dict] = []
            for entry in entries:
                report.outcomes.append(_outcome(entry, present, seen))
                if report.outcomes[-1].status == "imported":
                    new.append(_row(entry))
                seen.add(entry.serial)
            if not dry_run and new:
                for batch in peewee.chunked(new, 200):
                    HardwareToken.insert_many(batch).execute()
                audit.record("token_import", method="token", detail=_summary(report))
    except peewee.IntegrityError as exc:
        raise Conflict("another import stored some of these serials meanwhile; nothing imported, run it again") from exc
    return report


def _read_bytes(path_or_bytes: str | os.PathLike | bytes) -> bytes:
    if isinstance(path_or_bytes, bytes):
        return path_or_bytes
    try:
        with open(path_or_bytes, "rb") as file:
            return file.read()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path_or_bytes}: {exc.strerror}") from exc


def _present_serials(serials: list[str]) -> set[str]:
    present: set[str] = set()
    for batch in peewee.chunked([s for s in serials if s], 500):
        present.update(HardwareToken.select(HardwareToken.serial).where(HardwareToken.serial.in_(batch)).tuples())
    return {serial for (serial,) in present}


def _outcome(entry, present: set[str], seen: set[str]) -> Outcome:
    if isinstance(entry, token_files.BadSeed):
        return Outcome(entry.serial, "invalid", entry.reason, entry.where)
    if entry.serial in seen:
        return Outcome(entry.serial, "invalid", "duplicate serial in the file", entry.where)
    if entry.serial in present:
        return Outcome(entry.serial, "skipped", "already present")
    return Outcome(entry.serial, "imported")


def _row(seed: token_files.TokenSeed) -> dict:
    return {
        "serial": seed.serial,
        "kind": seed.kind,
        "secret": crypto.encrypt(seed.secret),
        "algorithm": seed.algorithm,
        "digits": seed.digits,
        "period": seed.period,
        "counter": seed.counter,
        "created_at": utcnow(),
    }


def _summary(report: ImportReport) -> str:
    return ", ".join(f"{count} {status}" for status, count in report.totals.items())


def listing(unassigned_only: bool = False) -> list[HardwareToken]:
    """Tokens by serial, with the account each is assigned to (``user`` is None when unassigned)."""
    query = HardwareToken.select(HardwareToken, User).join(User, peewee.JOIN.LEFT_OUTER).order_by(HardwareToken.serial)
    if unassigned_only:
        query = query.where(HardwareToken.user.is_null())
    return list(query)


def assign(serial: str, account: str) -> HardwareToken:
    """Assign a token to an existing account; one assigned to someone else must be unassigned first."""
    user = accounts.get(account)
    with db.atomic():
        token = _get(serial)
        if token.user_id == user.id:
            return token
        free = (HardwareToken.id == token.id) & HardwareToken.user.is_null()
        if not HardwareToken.update(user=user, assigned_at=utcnow()).where(free).execute():
            raise Conflict(_("该动态口令已分配给其他账号,请先取消分配"), code="assigned_elsewhere")
        audit.record("token_assigned", user=user, method="token", detail=f"serial {token.serial}")
    return HardwareToken.get_by_id(token.id)


def unassign(serial: str) -> User:
    """Take a token back from its account; the 动态口令 factor resting on it goes, with what rested on that."""
    with db.atomic():
        token = _get(serial)
        held = (HardwareToken.id == token.id) & (HardwareToken.user == token.user_id)
        if token.user_id is None or not HardwareToken.update(user=None, assigned_at=None).where(held).execute():
            raise Conflict(_("该动态口令未分配给任何账号: %(serial)s", serial=token.serial), code="not_assigned")
        user = User.get_by_id(token.user_id)
        bound = list(Factor.holding("token", token.serial))
        for factor in bound:
            Factor.delete().where(Factor.id == factor.id).execute()
            revocation.revoke_access(factor.user, "token unassigned", None, removed=[factor])
        detail = f"serial {token.serial}" + ("; its token factor removed" if bound else "")
        audit.record("token_unassigned", user=user, method="token", detail=detail)
    return user


def _get(serial: str) -> HardwareToken:
    token = HardwareToken.by_serial((serial or "").strip())
    if token is None:
        raise NotFound(NOT_FOUND)
    return token


def find_for_binding(user: User, serial: str) -> HardwareToken:
    """The token a user is binding: assigned to this user, or to nobody (the caller checks policy)."""
    token = _get(serial)
    if token.user_id not in (None, user.id):
        raise NotAllowed(ASSIGNED_ELSEWHERE, code="assigned_elsewhere")
    return token


def parse_code(raw: str | None, digits: int) -> str:
    """Exactly ``digits`` ASCII digits once ASCII spaces are removed; anything else is refused."""
    code = (raw or "").replace(" ", "")
    if not re.fullmatch(f"[0-9]{{{digits}}}", code, re.ASCII):
        raise InvalidCode(_("请输入 %(digits)s 位数字动态口令", digits=digits))
    return code


def check_code(token: HardwareToken, raw_code: str | None, now: float | None = None) -> int:
    """Accept a code once: the HOTP counter or TOTP step it matched (InvalidCode otherwise)."""
    fresh = HardwareToken.get_by_id(token.id)  # the caller's copy may predate another use
    code = parse_code(raw_code, fresh.digits)
    generator = _generator(fresh)
    if fresh.kind == "hotp":
        matched = _check_hotp(fresh, generator, code)
        token.counter = matched + 1
        return matched
    step = int((time.time() if now is None else now) // fresh.period)
    matched = _matching(generator, code, step - TOTP_DRIFT_STEPS, step + TOTP_DRIFT_STEPS + 1, last=True)
    if matched is None:
        raise InvalidCode(WRONG_CODE)
    unused = HardwareToken.last_used_step.is_null() | (HardwareToken.last_used_step < matched)
    if not _claim(fresh, unused, last_used_step=matched):
        raise InvalidCode(REUSED, code="code_reused")
    token.last_used_step = matched
    return matched


def _check_hotp(token: HardwareToken, generator: pyotp.HOTP, code: str) -> int:
    counter = token.counter
    matched = _matching(generator, code, counter, counter + HOTP_WINDOW)
    if matched is None:
        if _matching(generator, code, max(0, counter - HOTP_WINDOW), counter) is not None:
            raise InvalidCode(REUSED, code="code_reused")
        if _matching(generator, code, counter + HOTP_WINDOW, counter + RESYNC_WINDOW) is not None:
            raise InvalidCode(RESYNC_HINT, code="resync_required")
        raise InvalidCode(WRONG_CODE)
    if not _claim(token, HardwareToken.counter <= matched, counter=matched + 1):
        raise InvalidCode(REUSED, code="code_reused")  # a parallel request used it (or a later one) first
    return matched


def resync(token: HardwareToken, code1: str | None, code2: str | None) -> None:
    """HOTP only: two consecutive codes up to RESYNC_WINDOW ahead move the counter just past them."""
    fresh = HardwareToken.get_by_id(token.id)
    if fresh.kind != "hotp":
        raise InvalidInput(_("时间型动态口令无需同步"), code="not_hotp")
    first, second = parse_code(code1, fresh.digits), parse_code(code2, fresh.digits)
    generator = _generator(fresh)
    found, previous = None, generator.at(fresh.counter)
    for counter in range(fresh.counter, fresh.counter + RESYNC_WINDOW):
        following = generator.at(counter + 1)
        pair = hmac.compare_digest(previous, first) & hmac.compare_digest(following, second)
        if pair and found is None:
            found = counter
        previous = following
    if found is None:
        raise InvalidCode(RESYNC_FAILED)
    if not _claim(fresh, HardwareToken.counter <= found, counter=found + 2):
        raise InvalidCode(RESYNC_FAILED, code="code_reused")
    token.counter = found + 2


def bind_check(
    user: User, serial: str, raw_code: str | None, now: float | None = None, next_code: str | None = None
) -> dict[str, str]:
    """Binding 动态口令: the token (free or the user's) and its current code (with ``next_code``, the code
    after it: a resync of an HOTP token long unused); a free token becomes the user's.

    The caller stores the Factor from the result (best in the same transaction), and throttles.
    """
    token = find_for_binding(user, serial)
    with db.atomic():  # a wrong code rolls the claim back
        if token.user_id is None:
            free = (HardwareToken.id == token.id) & HardwareToken.user.is_null()
            if not HardwareToken.update(user=user, assigned_at=utcnow()).where(free).execute():
                raise NotAllowed(ASSIGNED_ELSEWHERE, code="assigned_elsewhere")
            audit.record("token_assigned", user=user, method="token", detail=f"serial {token.serial}; by binding")
        if next_code:
            resync(token, raw_code, next_code)
        else:
            check_code(token, raw_code, now=now)
    return {"external_id": token.serial, "label": token.serial}


def _claim(token: HardwareToken, unused, **values) -> bool:
    """One conditional UPDATE: True if this request moved the token's counter or step (and nobody else did)."""
    query = HardwareToken.update(last_used_at=utcnow(), **values).where((HardwareToken.id == token.id) & unused)
    return query.execute() == 1


def _generator(token: HardwareToken) -> pyotp.HOTP:
    return pyotp.HOTP(crypto.decrypt(token.secret), digits=token.digits, digest=DIGESTS[token.algorithm])


def _matching(generator: pyotp.HOTP, code: str, start: int, stop: int, last: bool = False) -> int | None:
    """The first (or last) counter in [start, stop) whose code is ``code``; every candidate is computed."""
    found = None
    for counter in range(max(0, start), stop):
        if hmac.compare_digest(generator.at(counter), code) and (last or found is None):
            found = counter
    return found
