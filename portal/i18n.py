"""Languages: zh-CN (the manual's wording, also the catalog's message ids) and English (Flask-Babel).

The user's own choice wins, then the language cookie set before login, then the browser's
``Accept-Language``; zh-CN otherwise. Notices mailed outside a request use the account's language.
"""

from __future__ import annotations

from contextlib import contextmanager

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, force_locale, get_locale

from portal import ROOT

DEFAULT = "zh_CN"
LANGUAGES = {"zh_CN": "中文", "en": "English"}  # each in its own language: the switch shows both
HTML_LANG = {"zh_CN": "zh-CN", "en": "en"}
COOKIE = "portal_lang"
TRANSLATIONS = ROOT / "translations"

babel = Babel()


def init_app(app: Flask) -> None:
    babel.init_app(
        app,
        locale_selector=select,
        default_locale=DEFAULT,
        default_timezone="Asia/Shanghai",
        default_translation_directories=str(TRANSLATIONS),
    )
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, html_lang=html_lang, current_language=current)


def select() -> str:
    """The language of this request."""
    if not has_request_context():
        return DEFAULT
    user = getattr(g, "user", None)
    if user is not None and user.language in LANGUAGES:
        return user.language
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="zh")
    return "en" if best == "en" else DEFAULT


def current() -> str:
    """The language the response is being written in (a key of LANGUAGES)."""
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else DEFAULT


def html_lang() -> str:
    return HTML_LANG[current()]


def normalise(value: str) -> str:
    """A stored or submitted language; anything unknown is '' (follow the browser)."""
    return value if value in LANGUAGES else ""


def of(user) -> str:
    """The language to write to ``user`` in (a mail, a notice): their stored choice; without one, the
    language of the request, unless it is another account's (an admin acting on the user); else the default."""
    if normalise(user.language or ""):
        return user.language
    if not has_request_context():
        return DEFAULT
    actor = getattr(g, "user", None)  # None while logging in, and on the phones' APIs
    return current() if actor is None or actor.id == user.id else DEFAULT


@contextmanager
def speaking(language: str):
    """Write in ``language`` (an account's stored choice; '' = the default) outside the request's own."""
    with force_locale(normalise(language) or DEFAULT):
        yield
