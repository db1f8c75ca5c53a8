"""The 邮箱安全 App's scripts speak the page's language (#14 item 6): /app carries the messages block
(portal/web/app_messages.py) that core.js's t() reads, and every t("…") of static/app/*.js is in it."""

from __future__ import annotations

import json
import re

import pytest

from portal import ROOT
from portal.web import app_messages

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
SCRIPTS = sorted((ROOT / "static" / "app").glob("*.js"))
BLOCK = re.compile(r'<script type="application/json" id="app-messages">([^<]*)</script>')
CALL = re.compile(r'(?<![\w$.])t\("((?:[^"\\]|\\.)*)"')
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _code(path) -> str:
    """The script without its comments (they may stay Chinese)."""
    text = path.read_text(encoding="utf-8")
    return "\n".join(re.sub(r"^\s*//.*|\s//\s.*$", "", line) for line in text.splitlines())


@pytest.fixture
def client(app):
    return app.test_client()


def _keys_used() -> set[str]:
    return {json.loads(f'"{key}"') for path in SCRIPTS for key in CALL.findall(_code(path))}


def _messages(client, **headers) -> dict[str, str]:
    response = client.get("/app", headers=headers)
    assert response.status_code == 200
    found = BLOCK.search(response.get_data(as_text=True))
    assert found, "no app-messages block in the App's shell"
    return json.loads(found.group(1))


def test_the_scripts_have_chinese_only_in_t():
    bare = [
        f"{path.name}: {value}"
        for path in SCRIPTS
        for line in _code(path).splitlines()
        for match in LITERAL.finditer(line)
        if CJK.search(value := match.group(1)) and not line[: match.start()].endswith("t(")
    ]
    assert not bare, "wrap in t() and list it in portal/web/app_messages.py:\n" + "\n".join(bare)
    assert len(_keys_used()) > 50


@pytest.mark.parametrize("chosen_by", ["browser", "cookie"])
def test_english_users_get_english_messages(client, chosen_by):
    if chosen_by == "cookie":
        client.set_cookie("portal_lang", "en")
    messages = _messages(client, **({"Accept-Language": "en"} if chosen_by == "browser" else {}))
    missing = _keys_used() - set(messages)
    assert not missing, f"t() keys not in portal/web/app_messages.py: {sorted(missing)}"
    chinese = {key: value for key, value in messages.items() if CJK.search(value)}
    assert not chinese, f"not translated: {chinese}"
    assert messages["已移除 {account}"] == "Removed {account}"
    for key, value in messages.items():
        assert sorted(PLACEHOLDER.findall(key)) == sorted(PLACEHOLDER.findall(value)), key


def test_chinese_users_get_the_keys(client):
    messages = _messages(client, **{"Accept-Language": "zh-CN"})
    assert messages == {key: key for key in messages}
    assert set(messages) == {message._args[0] for message in app_messages.MESSAGES}
    assert _keys_used() <= set(messages)


def test_the_block_is_data_the_policy_allows(client):
    response = client.get("/app", headers={"Accept-Language": "en"})
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy  # a JSON block is never run
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert html.index('id="app-messages"') < html.index("app/core.js")
