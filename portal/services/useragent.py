"""A browser and OS name from a User-Agent header, for people to recognise their device."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

# Order matters: Edge and Opera also claim Chrome; Chrome also claims Safari.
BROWSERS = [
    (_l("微信"), r"MicroMessenger/([\d.]+)"),
    ("Edge", r"Edg(?:e|A|iOS)?/([\d.]+)"),
    ("Opera", r"OPR/([\d.]+)"),
    ("Firefox", r"Firefox/([\d.]+)"),
    ("Chrome", r"(?:Chrome|CriOS)/([\d.]+)"),
    ("Safari", r"Version/([\d.]+).*Safari/"),
]
SYSTEMS = [
    ("Windows", r"Windows NT"),
    ("Android", r"Android"),
    ("iOS", r"iPhone|iPad|iPod"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("Linux", r"Linux|X11"),
]


def describe(user_agent: str) -> tuple[str, str]:
    """('Chrome 120', 'Windows'), or '未知' where nothing matches."""
    browser = _("未知浏览器")
    for name, pattern in BROWSERS:
        match = re.search(pattern, user_agent or "")
        if match:
            browser = f"{name} {match.group(1).split('.')[0]}"
            break
    system = next((name for name, pattern in SYSTEMS if re.search(pattern, user_agent or "")), _("未知系统"))
    return browser, system
