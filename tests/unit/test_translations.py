"""The English catalog is complete and current (#14 item 6): every user-visible string goes through
gettext, every message id is extracted and translated, and the compiled catalog is the one committed.

A Chinese string written straight into a template or into Python code (outside ``_()``, ``gettext`` and
friends) fails here: that is how an untranslated string is found before an English user finds it."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

from babel.messages import extract, mofile, pofile
from babel.messages.frontend import parse_mapping_cfg
from jinja2 import Environment

from portal import ROOT

CATALOG = ROOT / "translations" / "en" / "LC_MESSAGES"
TEMPLATE = ROOT / "translations" / "messages.pot"
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
GETTEXT = {"_", "gettext", "ngettext", "lazy_gettext", "_l", "lazy_ngettext", "pgettext", "npgettext"}
PLURAL = {"ngettext", "lazy_ngettext", "npgettext"}  # singular and plural: every argument is a message

# Chinese that is not the portal talking to a user in its language, by file (relative to the repository):
# data, operator tools, the manual's wording matched in what others send. Each entry says why.
UNTRANSLATED_FILES = {
    "portal/i18n.py": "the language switch names each language in that language (中文 / English)",
    "portal/migrations.py": "schema history for operators, never shown to users",
    "portal/services/demo.py": "demo accounts' names and data (张三 is a name, not a phrase)",
    "portal/directory/dev_slapd.py": "the development directory's sample people",
    "wechat_backend/stub.py": "the WeChat API stub answers as WeChat does",
    "portal/cli.py": "operator commands (flask --app wsgi …): help names the manual's labels",
    "portal/token_cli.py": "operator commands for 动态口令 seed files",
    "portal/app_client.py": "the reference 邮箱安全 App client, a developer tool quoting the App's buttons",
    "portal/web/simulators.py": "development simulators (PORTAL_DEV_SIMULATORS), refused in production",
    "portal/services/ip2region_data.py": "values of the IP database that places.py compares (data, never shown)",
}

# Single strings that are data in a file that is otherwise translated: (file, string) → why.
UNTRANSLATED_STRINGS = {
    ("portal/services/factors/wechat.py", "微信用户 "): "the prefix of WeChat labels stored before 2026-12",
    ("portal/services/accounts.py", "是"): "a word an import file's admin column may hold, matched, never shown",
    (
        "portal/services/sms_gateway.py",
        "PORTAL_SMS_PROVIDER=console: development prints the message instead.\n短信 to %s: 验证码 %s (%s)",
    ): "the console SMS provider's log line for developers",
}


def _extracted() -> set[str]:
    with open(ROOT / "babel.cfg", encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = extract.extract_from_dir(str(ROOT), method_map, options_map, keywords=extract.DEFAULT_KEYWORDS)
    return {message if isinstance(message, str) else message[0] for _file, _line, message, _c, _ctx in found}


def _catalog():
    with open(CATALOG / "messages.po", encoding="utf-8") as po:
        return pofile.read_po(po, locale="en")


def test_the_template_holds_every_string_of_the_code():
    with open(TEMPLATE, encoding="utf-8") as pot:
        template = {message.id if isinstance(message.id, str) else message.id[0] for message in pofile.read_po(pot)}
    template.discard("")
    extracted = _extracted()
    assert not extracted - template, "run `make translations`: new strings are missing from messages.pot"
    assert not template - extracted, "run `make translations`: messages.pot lists strings the code no longer has"


def test_every_string_has_an_english_translation():
    catalog = _catalog()
    missing = [message.id for message in catalog if message.id and not _translated(message)]
    fuzzy = [message.id for message in catalog if message.id and message.fuzzy]
    assert not missing, f"untranslated in messages.po: {missing[:20]}"
    assert not fuzzy, f"fuzzy (unchecked) in messages.po: {fuzzy[:20]}"
    chinese = [message.id for message in catalog if message.id and CJK.search(_joined(message.string))]
    assert not chinese, f"English entries still in Chinese: {chinese[:20]}"


def test_placeholders_survive_translation():
    for message in _catalog():
        if message.id and "python-format" in message.flags:
            assert _placeholders(_joined(message.id)) == _placeholders(_joined(message.string)), message.id


def test_the_compiled_catalog_is_the_committed_one():
    compiled = io.BytesIO()
    mofile.write_mo(compiled, _catalog())
    assert (CATALOG / "messages.mo").read_bytes() == compiled.getvalue(), "run `make translations` (compile)"


def test_templates_say_nothing_in_chinese_outside_gettext():
    environment = Environment(extensions=["jinja2.ext.i18n"])
    found = []
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.suffix in (".html", ".txt"):
            found += [
                f"{path.relative_to(ROOT)}:{line}: {value!r}" for line, value in _bare_template_text(environment, path)
            ]
    assert not found, "wrap in _() or {% trans %}:\n" + "\n".join(found[:40])


def test_python_says_nothing_in_chinese_outside_gettext():
    found = []
    for folder in ("portal", "wechat_backend"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name not in UNTRANSLATED_FILES:
                found += [
                    f"{name}:{line}: {value[:60]!r}"
                    for line, value in _bare_python_strings(path)
                    if (name, value) not in UNTRANSLATED_STRINGS
                ]
    assert not found, "wrap in _() (lazy_gettext for module constants):\n" + "\n".join(found[:40])


def _translated(message) -> bool:
    return all(message.string) if isinstance(message.string, (list, tuple)) else bool(message.string)


def _joined(value) -> str:
    return " ".join(value) if isinstance(value, (list, tuple)) else value


def _placeholders(text: str) -> list[str]:
    return sorted(re.findall(r"%\((\w+)\)[sd]|\{(\w*)\}", text))


def _bare_template_text(environment: Environment, path: Path):
    """Template text and string literals with Chinese that no gettext call or trans block encloses."""
    inside_trans, previous = False, []
    for line, kind, value in environment.lex(path.read_text(encoding="utf-8")):
        if kind == "name" and value in ("trans", "pluralize") and previous[-1:] == ["block_begin"]:
            inside_trans = True
        elif kind == "name" and value == "endtrans":
            inside_trans = False
        elif kind in ("data", "string") and CJK.search(value) and not inside_trans:
            called = previous[-2:] in (["name:" + g, "lparen"] for g in GETTEXT)
            if not called:
                yield line, value.strip()[:60]
        if kind != "whitespace":
            token = "lparen" if (kind, value) == ("operator", "(") else kind
            previous = [*previous[-3:], f"name:{value}" if kind == "name" else token]


def _bare_python_strings(path: Path):
    """String constants with Chinese that are neither a docstring nor a message of a gettext call."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node.func) in GETTEXT and node.args:
            messages = node.args if _called_name(node.func) in PLURAL else node.args[:1]
            allowed.update(id(part) for message in messages for part in ast.walk(message))
        elif isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                allowed.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in allowed:
            if CJK.search(node.value):
                yield node.lineno, node.value


def _called_name(func) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
