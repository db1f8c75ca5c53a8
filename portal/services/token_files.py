"""Reading 动态口令 seed files from token vendors: PSKC (RFC 6030, plain or encrypted) and CSV.

Each key of a file becomes a ``TokenSeed`` (valid, ready to store) or a ``BadSeed`` (why not). Nothing
here touches the database; ``hardware_tokens.import_file`` decides what is stored.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from dataclasses import dataclass

import pskc
from pskc.exceptions import DecryptionError, KeyDerivationError, PSKCError

from portal.services.errors import InvalidInput

KINDS = ("hotp", "totp")
ALGORITHMS = ("sha1", "sha256", "sha512")
DIGITS = (6, 8)
SERIAL_RE = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)  # printable ASCII, no spaces: typed from the token's back
MIN_SECRET_BYTES = 10  # RFC 4226 asks for 128 bits; older tokens and many examples carry 80
MAX_SECRET_BYTES = 128
CSV_COLUMNS = ("serial", "secret", "type", "digits", "period", "counter")  # optional 7th: algorithm
CANNOT_DECRYPT = "cannot decrypt: wrong key or password"
NO_KEY = "cannot decrypt: the file is encrypted; give --key HEX or --password"


@dataclass(frozen=True)
class TokenSeed:
    serial: str
    kind: str
    secret: str  # base32, unpadded
    algorithm: str = "sha1"
    digits: int = 6
    period: int = 30
    counter: int = 0
    where: str = ""  # "line 3", "key 2"


@dataclass(frozen=True)
class BadSeed:
    serial: str  # as found in the file ("" if none; then ``where`` tells which entry)
    reason: str
    where: str = ""


def read(data: bytes, fmt: str, key_hex: str | None = None, password: str | None = None) -> list[TokenSeed | BadSeed]:
    """Every entry of a seed file, in file order; InvalidInput if the file as a whole cannot be read."""
    if fmt == "pskc":
        return read_pskc(data, key_hex, password)
    if fmt == "csv":
        if key_hex or password:
            raise InvalidInput("--key and --password apply to PSKC files only")
        return read_csv(data)
    raise InvalidInput(f"unknown format {fmt!r}: use pskc or csv")


def read_pskc(data: bytes, key_hex: str | None = None, password: str | None = None) -> list[TokenSeed | BadSeed]:
    """PSKC keys; with an encrypted file, a pre-shared key (hex) or a password (PBKDF2) decrypts the secrets."""
    if key_hex and password:
        raise InvalidInput("give either --key or --password, not both")
    try:
        document = pskc.PSKC(io.BytesIO(data))
    except (PSKCError, ValueError, SyntaxError) as exc:  # defusedxml refusals are ValueErrors
        raise InvalidInput(f"not a valid PSKC file: {exc}") from exc
    _unlock(document, key_hex, password)
    entries = [_pskc_entry(document, key, index) for index, key in enumerate(document.keys, start=1)]
    if document.encryption.is_encrypted and entries and all(_undecryptable(e) for e in entries):
        raise InvalidInput(CANNOT_DECRYPT if key_hex or password else NO_KEY)
    return entries


def _unlock(document: pskc.PSKC, key_hex: str | None, password: str | None) -> None:
    if key_hex:
        try:
            document.encryption.key = bytes.fromhex(key_hex.strip())
        except ValueError as exc:
            raise InvalidInput("--key must be the pre-shared key in hexadecimal") from exc
    elif password:
        try:
            document.encryption.derive_key(password)
        except (KeyDerivationError, DecryptionError) as exc:
            raise InvalidInput(f"{CANNOT_DECRYPT} ({exc})") from exc


def _undecryptable(entry: TokenSeed | BadSeed) -> bool:
    return isinstance(entry, BadSeed) and entry.reason.startswith("cannot decrypt")


def _pskc_entry(document: pskc.PSKC, key, index: int) -> TokenSeed | BadSeed:
    serial = str(key.serial or key.id or "").strip()
    where = f"key {index}"
    try:
        secret, counter, interval = key.secret, key.counter, key.time_interval
    except (DecryptionError, KeyDerivationError):
        return BadSeed(serial, CANNOT_DECRYPT if document.encryption.key else NO_KEY, where)
    except (PSKCError, ValueError, TypeError) as exc:
        return BadSeed(serial, f"cannot read key: {exc}", where)
    kind = _pskc_kind(key.algorithm)
    if kind is None:
        return BadSeed(serial, f"unsupported algorithm: {key.algorithm or 'none given'}", where)
    if key.response_encoding not in (None, "DECIMAL"):
        return BadSeed(serial, f"unsupported response encoding: {key.response_encoding}", where)
    algorithm = _hash_name(key.algorithm_suite)
    if algorithm is None:
        return BadSeed(serial, f"unsupported algorithm: {key.algorithm_suite}", where)
    return _checked(
        serial,
        where,
        kind=kind,
        secret=secret,
        algorithm=algorithm,
        digits=key.response_length if key.response_length is not None else 6,
        period=interval if interval is not None else 30,
        counter=counter if counter is not None else 0,
    )


def _pskc_kind(uri: str | None) -> str | None:
    """hotp / totp from the algorithm URI (urn:ietf:params:xml:ns:keyprov:pskc:hotp, …#totp, …)."""
    name = re.split(r"[:#/]", (uri or "").strip().lower())[-1]
    return name if name in KINDS else None


def _hash_name(suite: str | None) -> str | None:
    """sha1 / sha256 / sha512 from a PSKC Suite (HMAC-SHA256, SHA-256, …); SHA-1 when absent."""
    name = (suite or "sha1").strip().lower().removeprefix("hmac-").replace("-", "")
    return name if name in ALGORITHMS else None


def read_csv(data: bytes) -> list[TokenSeed | BadSeed]:
    """Rows ``serial,secret,type,digits,period,counter[,algorithm]`` (secret base32); a header row is allowed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("not UTF-8 text; save the CSV as UTF-8 and import again") from exc
    entries: list[TokenSeed | BadSeed] = []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#") or (line == 1 and cells[0].lower() == "serial"):
            continue
        entries.append(_csv_entry(cells, f"line {line}"))
    return entries


def _csv_entry(cells: list[str], where: str) -> TokenSeed | BadSeed:
    serial = cells[0]
    if not 2 <= len(cells) <= len(CSV_COLUMNS) + 1:
        return BadSeed(serial, f"expected the columns {','.join(CSV_COLUMNS)}[,algorithm]", where)
    cells += [""] * (len(CSV_COLUMNS) + 1 - len(cells))
    _, secret_text, kind, digits, period, counter, algorithm = cells
    try:
        secret = _base32(secret_text)
    except ValueError:
        return BadSeed(serial, "bad base32 secret", where)
    numbers = {}
    for name, value, default in (("digits", digits, 6), ("period", period, 30), ("counter", counter, 0)):
        if value and not (value.isascii() and value.isdigit()):
            return BadSeed(serial, f"{name} is not a number: {value!r}", where)
        numbers[name] = int(value) if value else default
    kind = kind.lower() or "totp"
    if kind not in KINDS:
        return BadSeed(serial, f"unsupported type: {kind} (hotp or totp)", where)
    algorithm = _hash_name(algorithm or None)
    if algorithm is None:
        return BadSeed(serial, f"unsupported algorithm: {cells[6]}", where)
    return _checked(serial, where, kind=kind, secret=secret, algorithm=algorithm, **numbers)


def _base32(text: str) -> bytes:
    compact = text.replace(" ", "").rstrip("=").upper()
    if not compact:
        return b""
    try:
        return base64.b32decode(compact + "=" * (-len(compact) % 8))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("bad base32") from exc


def _checked(
    serial: str, where: str, *, kind: str, secret: bytes | None, algorithm: str, digits: int, period: int, counter: int
) -> TokenSeed | BadSeed:
    """The rules every token must meet, whatever file it came from."""
    if not SERIAL_RE.fullmatch(serial):
        return BadSeed(serial, "missing or bad serial (1-64 printable ASCII characters, no spaces)", where)
    if not secret:
        return BadSeed(serial, "missing secret", where)
    if not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
        return BadSeed(serial, f"secret of {len(secret) * 8} bits (at least {MIN_SECRET_BYTES * 8} expected)", where)
    if digits not in DIGITS:
        return BadSeed(serial, f"digits must be 6 or 8, not {digits}", where)
    if kind == "totp" and not 10 <= period <= 300:
        return BadSeed(serial, f"period must be 10-300 seconds, not {period}", where)
    if not 0 <= counter < 2**62:
        return BadSeed(serial, f"counter out of range: {counter}", where)
    if kind == "hotp":
        period = 30
    else:
        counter = 0
    b32 = base64.b32encode(secret).decode().rstrip("=")
    return TokenSeed(serial, kind, b32, algorithm, digits, period, counter, where)
