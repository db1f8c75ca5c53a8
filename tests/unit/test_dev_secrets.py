"""Development secrets under instance/ (config._keep_generated): gunicorn's workers boot at once and
must all read a whole file and keep one key (a worker once died reading secrets.json half-written)."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ProcessPoolExecutor

from portal import config


def _boot(instance_path: str) -> str:
    settings: dict = {}
    for _ in range(50):  # every boot rereads the file
        config._keep_generated(settings, instance_path, {"SECRET_KEY": lambda: secrets.token_urlsafe(32)})
    return settings["SECRET_KEY"]


def test_workers_booting_together_agree_on_one_key(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        keys = set(pool.map(_boot, [str(tmp_path)] * 8))
    assert len(keys) == 1
    assert json.loads((tmp_path / "secrets.json").read_text())["SECRET_KEY"] in keys
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_a_file_with_every_key_is_left_as_it_is(tmp_path):
    settings: dict = {}
    config._keep_generated(settings, str(tmp_path), {"SECRET_KEY": lambda: "first"})
    before = (tmp_path / "secrets.json").stat()
    config._keep_generated(settings, str(tmp_path), {"SECRET_KEY": lambda: "second"})
    after = (tmp_path / "secrets.json").stat()
    assert settings["SECRET_KEY"] == "first"
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
