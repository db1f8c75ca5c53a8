"""The provider's signing keys: a JWKS file with private keys, the current one first.

``rotate`` puts a new key first (it signs from now on) and marks the old ones retired; a retired
key is still published until every id_token it signed has expired, then dropped. Every worker
re-reads the file when it changes, so a rotation takes effect everywhere at once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from flask import current_app
from joserfc.jwk import KeySet, RSAKey

ALGORITHM = "RS256"
_cache: dict[str, tuple[float, list[dict]]] = {}
_lock = threading.Lock()


def path() -> Path:
    configured = str(current_app.config["OIDC_KEYS_FILE"])
    return Path(configured) if configured else Path(current_app.instance_path) / "oidc-keys.json"


def _new_key() -> dict:
    kid = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + os.urandom(4).hex()
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True)
    return key.as_dict(private=True)


def _write(file: Path, keys: list[dict]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({"keys": keys}, out)
    os.replace(temporary, file)


def _stored() -> list[dict]:
    """The keys in the file (created with one key on first use)."""
    file = path()
    with _lock:
        if not file.exists():
            _write(file, [_new_key()])
        mtime = file.stat().st_mtime
        cached = _cache.get(str(file))
        if cached is None or cached[0] != mtime:
            cached = (mtime, json.loads(file.read_text())["keys"])
            _cache[str(file)] = cached
        return cached[1]


def _publishable(key: dict, now: float) -> bool:
    retired = key.get("retired_at")
    return retired is None or now - retired < int(current_app.config["OIDC_ACCESS_TOKEN_SECONDS"]) + 300


def signing_key() -> RSAKey:
    """The current private key (signs new id_tokens)."""
    data = dict(_stored()[0])
    data.pop("retired_at", None)
    return RSAKey.import_key(data)


def public_jwks() -> dict:
    """What /oauth/jwks publishes: the public halves of the current and the still-valid retired keys."""
    now = time.time()
    published = []
    for data in _stored():
        if _publishable(data, now):
            private = {k: v for k, v in data.items() if k != "retired_at"}
            published.append(RSAKey.import_key(private).as_dict(private=False))
    return {"keys": published}


def verifying_keys() -> KeySet:
    return KeySet.import_key_set(public_jwks())


def rotate() -> tuple[str, list[str]]:
    """A new current key; returns its kid and the kids still published beside it."""
    now = time.time()
    old = [dict(key, retired_at=key.get("retired_at") or now) for key in _stored()]
    kept = [key for key in old if _publishable(key, now)]
    new = _new_key()
    _write(path(), [new, *kept])
    return new["kid"], [key["kid"] for key in kept]
