"""Password hashing with argon2id, at the parameters of PORTAL_ARGON2_* (OWASP's by default)."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import HashingError, InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from flask_babel import gettext as _

from portal.services.errors import InvalidInput, Unavailable

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher().hash(password)


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(_("密码至少 %(num)s 个字符", num=MIN_LENGTH))
    if len(password) > 256:
        raise InvalidInput(_("密码过长"))


def verify(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; with no hash (no such account), take as long and say no.

    A hash that cannot be computed (argon2 needs PORTAL_ARGON2_MEMORY_KIB of memory; a process whose address
    space is capped, such as Dovecot's auth service, may not get them) is the server's failure, not a
    wrong password: it raises Unavailable, so that nobody is told their right password is wrong.
    """
    try:
        if stored_hash is None:
            _hasher().hash(password)  # one argon2 run, like a real check: no hint that the account is unknown
            return False
        return _hasher().verify(stored_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False
    except (VerificationError, HashingError) as exc:
        raise Unavailable(_("系统繁忙,密码暂时无法校验,请稍后再试")) from exc


def needs_rehash(stored_hash: str) -> bool:
    """Whether a stored hash was made with other parameters than the configured ones (redone at login)."""
    return _hasher().check_needs_rehash(stored_hash)


def rehash(password: str) -> str:
    """The hash of a password that just proved right, at the configured parameters (no strength rules:
    an old short password keeps working until its owner changes it)."""
    return _hasher().hash(password)


def _hasher() -> PasswordHasher:
    config = current_app.config
    return _hasher_for(
        int(config["ARGON2_MEMORY_KIB"]), int(config["ARGON2_TIME_COST"]), int(config["ARGON2_PARALLELISM"])
    )


@lru_cache(maxsize=4)
def _hasher_for(memory_kib: int, time_cost: int, parallelism: int) -> PasswordHasher:
    """One hasher per parameter set: hashes, checks, and says which stored hashes are weaker or stronger."""
    return PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
