"""The README's "Checking by hand" examples work as printed against `make run` (development, demo data)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from portal import create_app, migrations
from portal.db import db
from portal.services import demo
from tests.conftest import make_config

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_example() -> tuple[str, dict[str, str]]:
    """The path and headers of the README's curl call to /mail/auth."""
    block = README.read_text(encoding="utf-8").split("### Checking by hand", 1)[1].split("```sh", 1)[1]
    command = re.search(r"^curl .*?(?=^#)", block, re.S | re.M).group(0).replace("\\\n", " ")
    words = shlex.split(command)
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    url = next(word for word in words if word.startswith("http://"))
    return url.removeprefix("http://127.0.0.1:8000"), headers


@pytest.fixture
def make_run_app(database_url):
    """The portal as `make run` starts it: development settings and the demo accounts."""
    app = create_app(make_config(database_url, ENV="development"))
    with app.app_context(), db.connection_context():
        if not database_url.startswith("sqlite"):
            db.drop_tables(list(reversed(migrations.models.ALL_MODELS)), safe=True, cascade=True)
        migrations.upgrade()
        demo.seed()
    return app


def test_the_curl_example_gets_what_nginx_would(make_run_app):
    path, headers = curl_example()
    assert "X-Mail-Auth-Secret" not in headers  # make run sets none: loopback callers may ask

    response = make_run_app.test_client().get(path, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})

    assert response.headers["Auth-Status"] == "OK"
    assert (response.headers["Auth-Server"], response.headers["Auth-Port"]) == ("127.0.0.1", "143")
