"""审计日志 search: the console's filters (account, event, outcome, IP/CIDR, time range) as one query,
read newest first a page at a time by keyset (created_at, id) — never OFFSET, so page 1000 costs what
page 1 costs — or streamed whole for the CSV export.

Each filter is a range or an equality on the leading column of an index that ends in (created_at, id)
(migration 21), so a page is an index range scan in page order on SQLite and PostgreSQL alike:

- ``account``: a prefix, as the byte range [p, p + U+10FFFF) — index-friendly where LIKE is not (LIKE
  needs text_pattern_ops on PostgreSQL and is case-insensitive on SQLite). PostgreSQL compares it in the
  "C" collation, as its index does; wildcards (``%``, ``_``) are plain characters.
- ``ip``: one address (equality) or a network. IPv4 is stored as dotted text, so a network aligned on
  an octet is the text prefix "10.12." (a range as above); any other prefix length is split into the
  ≤ 128 octet-aligned networks (or, from /25, the ≤ 128 addresses) it is made of. IPv6 text has no
  fixed form (zero groups compress), so an IPv6 network is narrowed in SQL by what its addresses'
  text must start with and decided exactly in Python (``ipaddress``) row by row; a page may then hold
  fewer rows than asked, and the cursor still moves past every row read.
- ``since`` / ``until``: Beijing time (Asia/Shanghai), a date or a date and time, ``until`` inclusive
  to the precision given (a date means the whole day), turned into a UTC range on created_at.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import peewee as pw
from flask_babel import gettext as _

from portal.db import db
from portal.models import AuditEvent, User
from portal.services import accounts, audit, audit_plan
from portal.services.client import Client
from portal.timezone import LOCAL

PAGE_SIZE = 50
EXPORT_BATCH = 1000
SCAN_BATCH = 500  # rows read per round when Python decides (an IPv6 network)
SCAN_LIMIT = 5000  # rows read for one page at most, in that case
TOP = "\U0010ffff"  # sorts after every character, byte-wise (UTF-8) as in code points
CODE = re.compile(r"[a-z0-9_]{1,48}")
CURSOR = re.compile(r"(\d{1,19})\.(\d{1,19})")
TIME_FORMATS = (("%Y-%m-%d", timedelta(days=1)), ("%Y-%m-%dT%H:%M", timedelta(minutes=1)))
TIME_FORMATS += (("%Y-%m-%d %H:%M", timedelta(minutes=1)), ("%Y-%m-%dT%H:%M:%S", timedelta(seconds=1)))
TIME_FORMATS += (("%Y-%m-%d %H:%M:%S", timedelta(seconds=1)),)
MAX_MICROS = (datetime(9999, 1, 1) - datetime(1970, 1, 1)) // timedelta(microseconds=1)
_BYTE_ORDER = ' COLLATE "C"'  # PostgreSQL; the indexes of migration 21 compare so too
IP_INDEX = "audit_event_ip_prefix"
FIELDS = ("account", "event", "outcome", "ip", "since", "until")


@dataclass
class Filters:
    """The search as typed (``values``, shown back in the form) and as parsed; ``errors`` per field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    conditions: list[pw.Expression] = field(default_factory=list)
    network: ipaddress.IPv6Network | None = None  # decided in Python (see the module's doc)
    ranges: dict[str, pw.Node] = field(default_factory=dict)  # prefix conditions by their index (audit_plan)
    exact: list[str] = field(default_factory=list)  # the indexes of the equality filters
    source: pw.Node | None = None  # the FROM clause audit_plan chose (SQLite)
    planned: bool = False

    @property
    def query_args(self) -> dict[str, str]:
        """The non-empty filters, for links that keep them (加载更多, CSV)."""
        return {key: value for key, value in self.values.items() if value}


@dataclass
class Page:
    events: list[AuditEvent]
    cursor: str | None  # where the next page starts; None at the end


def parse(args) -> Filters:
    """The filters from a request's query string (any mapping with ``get``)."""
    filters = Filters(values={key: (args.get(key) or "").strip() for key in FIELDS})
    for key, parser in (("account", _account), ("event", _code), ("outcome", _code), ("ip", _ip)):
        if filters.values[key]:
            try:
                parser(filters, key, filters.values[key])
            except ValueError as exc:
                filters.errors[key] = str(exc)
    _time_range(filters)
    return filters


def page(filters: Filters, cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page of the filtered events, newest first, starting after ``cursor`` ("" = the newest)."""
    position = parse_cursor(cursor)
    found: list[AuditEvent] = []
    scanned = 0
    while True:
        batch = size + 1 if filters.network is None else SCAN_BATCH
        rows = list(_query(filters, position).limit(batch))
        more = len(rows) == batch
        for row in rows:
            scanned += 1
            position = (row.created_at, row.id)
            if _matches(filters, row):
                found.append(row)
            if len(found) > size:  # one beyond the page: there is a next page
                found.pop()
                last = found[-1]
                return Page(found, _cursor_of(last.created_at, last.id))
        if not more:
            return Page(found, None)
        if scanned >= SCAN_LIMIT:
            return Page(found, _cursor_of(*position))


def export(filters: Filters) -> Iterator[AuditEvent]:
    """Every filtered event, newest first, read in keyset batches (memory stays flat, no long cursor)."""
    position = None
    while True:
        rows = list(_query(filters, position).limit(EXPORT_BATCH))
        for row in rows:
            if _matches(filters, row):
                yield row
        if len(rows) < EXPORT_BATCH:
            return
        position = (rows[-1].created_at, rows[-1].id)


def record_export(filters: Filters, by: User, client: Client) -> None:
    """Audit the export itself: who took which part of the log away."""
    searched = " ".join(f"{key}={value}" for key, value in filters.query_args.items()) or "all"
    audit.record("audit_exported", user=by, client=client, detail=f"by {by.account}; {searched}")


def parse_cursor(cursor: str) -> tuple[datetime, int] | None:
    """A cursor ("<microseconds since 1970 UTC>.<id>") as (created_at, id); ValueError if malformed."""
    if not cursor:
        return None
    match = CURSOR.fullmatch(cursor)
    if not match:
        raise ValueError(_("翻页位置无效,请重新查询"))
    micros, row_id = (int(part) for part in match.groups())
    if micros >= MAX_MICROS or row_id >= 2**63:  # beyond year 9999 / a 64-bit id
        raise ValueError(_("翻页位置无效,请重新查询"))
    return datetime(1970, 1, 1) + timedelta(microseconds=micros), row_id


def _cursor_of(created_at: datetime, row_id: int) -> str:
    micros = (created_at - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    return f"{micros}.{row_id}"


def _query(filters: Filters, position: tuple[datetime, int] | None) -> pw.ModelSelect:
    if not filters.planned:
        filters.source, filters.planned = audit_plan.source(filters.ranges, filters.exact), True
    query = AuditEvent.select().order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if filters.source is not None:
        query = query.from_(filters.source)
    for condition in filters.conditions:
        query = query.where(condition)
    if position is not None:
        moment = pw.Value(position[0], converter=AuditEvent.created_at.db_value)
        query = query.where(pw.Tuple(AuditEvent.created_at, AuditEvent.id) < pw.Tuple(moment, position[1]))
    return query


def _matches(filters: Filters, row: AuditEvent) -> bool:
    if filters.network is None:
        return True
    try:
        return ipaddress.ip_address(row.ip) in filters.network
    except ValueError:
        return False


def _bytewise(column: pw.Field) -> pw.Node:
    """The column compared byte by byte (its index's order, migration 21), whatever the collation."""
    if isinstance(db.obj, pw.PostgresqlDatabase):
        return column.collate(_BYTE_ORDER.removeprefix(" COLLATE "))
    return column


def _prefix(column: pw.Field, prefix: str) -> pw.Expression:
    return (_bytewise(column) >= prefix) & (_bytewise(column) < prefix + TOP)


def _account(filters: Filters, _key: str, value: str) -> None:
    if len(value) > 254:
        raise ValueError(_("账号过长"))
    _add_range(filters, "audit_event_account_prefix", _prefix(AuditEvent.account, accounts.normalize(value)))


def _code(filters: Filters, key: str, value: str) -> None:
    """An event or outcome code: the lists offer the known ones; a newer release's code is allowed."""
    if not CODE.fullmatch(value):
        raise ValueError(_("事件类型无效,请从列表中选择") if key == "event" else _("结果无效,请从列表中选择"))
    filters.conditions.append(getattr(AuditEvent, key) == value)
    filters.exact.append(f"audit_event_{key}_created_at_id")


def _ip(filters: Filters, _key: str, value: str) -> None:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(_("请输入 IP 地址或网段,例如 202.117.0.5 或 202.117.0.0/16")) from None
    if network.num_addresses == 1:
        filters.conditions.append(_bytewise(AuditEvent.ip) == str(network.network_address))
        filters.exact.insert(0, IP_INDEX)  # one address: the most telling exact filter
    elif network.prefixlen == 0:  # every address of the family
        filters.conditions.append(AuditEvent.ip.contains("." if network.version == 4 else ":"))
        filters.network = network if network.version == 6 else None  # "::ffff:1.2.3.4" has both
    elif network.version == 4:
        _add_range(filters, IP_INDEX, _ipv4(network))
    else:
        filters.network = network
        _add_range(filters, IP_INDEX, _ipv6_candidates(network))


def _add_range(filters: Filters, index: str, condition: pw.Node) -> None:
    filters.conditions.append(condition)
    filters.ranges[index] = condition


def _ipv4(network: ipaddress.IPv4Network) -> pw.Expression:
    """An IPv4 network as conditions on the dotted text (see the module's doc)."""
    if network.prefixlen > 24:
        return _bytewise(AuditEvent.ip) << [str(address) for address in network]
    aligned = -(-network.prefixlen // 8) * 8  # the next octet boundary
    prefixes = [_dotted_prefix(subnet) for subnet in network.subnets(new_prefix=aligned)]
    return _prefix(AuditEvent.ip, prefixes[0]) if len(prefixes) == 1 else _any_prefix("ip", prefixes)


def _any_prefix(column: str, prefixes: list[str]) -> pw.SQL:
    """``column`` starts with one of ``prefixes``: OR-ed ranges as one SQL text (as peewee nodes, 128
    of them take it ~0.1 s to write out; this takes a millisecond)."""
    name = f'"{column}"{_BYTE_ORDER if isinstance(db.obj, pw.PostgresqlDatabase) else ""}'
    mark = db.obj.param
    clause = " OR ".join([f"({name} >= {mark} AND {name} < {mark})"] * len(prefixes))
    return pw.SQL(f"({clause})", [bound for prefix in prefixes for bound in (prefix, prefix + TOP)])


def _dotted_prefix(network: ipaddress.IPv4Network) -> str:
    """An octet-aligned network as the text its addresses start with: 10.12.0.0/16 → "10.12."."""
    octets = str(network.network_address).split(".")[: network.prefixlen // 8]
    return ".".join(octets) + "."


def _ipv6_candidates(network: ipaddress.IPv6Network) -> pw.Node:
    """What the text of an address in ``network`` must start with: its leading non-zero groups, which
    no compression removes (lower-case, as Python, nginx and browsers write them)."""
    groups = network.network_address.exploded.split(":")[: network.prefixlen // 16]
    leading = []
    for group in groups:
        if group == "0000":
            break
        leading.append(group.lstrip("0"))
    return _prefix(AuditEvent.ip, ":".join(leading) + ":") if leading else _prefix(AuditEvent.ip, "")


def _time_range(filters: Filters) -> None:
    since = _moment(filters, "since")
    until = _moment(filters, "until")
    if since:
        filters.conditions.append(AuditEvent.created_at >= since[0])
    if until:
        filters.conditions.append(AuditEvent.created_at < until[0] + until[1])
    if since and until and since[0] >= until[0] + until[1]:
        filters.errors["until"] = _("结束时间早于开始时间")


def _moment(filters: Filters, key: str) -> tuple[datetime, timedelta] | None:
    """A Beijing time as (naive UTC, the precision it was given in); None if empty or invalid."""
    value = filters.values[key]
    if not value:
        return None
    for fmt, precision in TIME_FORMATS:
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if not 1971 <= moment.year <= 9998:
            break
        return moment.replace(tzinfo=LOCAL).astimezone(UTC).replace(tzinfo=None), precision
    filters.errors[key] = _("请输入日期(如 2026-09-01)或日期和时间(如 2026-09-01 08:30)")
    return None
