"""`flask --app wsgi demo-large --users N --events M`: a large, realistic database for benchmarks.

N accounts (one precomputed argon2id hash for all: hashing 50,000 would take hours; password
``DEMO_PASSWORD``), most with a second factor in the methods' real shares, some with app passwords;
M audit events over the last ``days`` days in the real mix (mostly successful logins, some wrong
passwords and codes, lockouts, mail-client logins, App / WeChat approvals, 不是本人操作), more on
weekdays and in office hours, written in time order (ids follow time as in production). The daily
summaries (report_summary) are filled as the events are, and adoption snapshots from the factors'
binding dates. Rows go in with insert_many, in batches, one transaction per batch.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from portal import crypto
from portal.models import AppPassword, AuditEvent, Factor, User, utcnow
from portal.services import passwords, report_summary
from portal.services.demo import DEMO_PASSWORD
from portal.services.errors import Conflict

DOMAIN = "mail.xamd.edu.cn"
BATCH = 2000  # rows per INSERT (PostgreSQL takes at most 65,535 parameters: 2,000 × 9 fields)
SURNAMES = "wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he lin luo gao".split()
GIVEN = "wei fang na min jing li qiang lei jun yang yong yan jie tao ming chao xiu hua ping gang".split()
# Second-factor methods of protected accounts: (method, share).
METHOD_SHARES = (("totp", 38), ("wechat", 24), ("app", 18), ("email", 9), ("sms", 7), ("webauthn", 3), ("token", 1))
PROTECTED_SHARE = 0.78
# The event mix: (event, method, outcome, detail, weight); method "*" = the account's kind of method.
MIX = (
    ("login_password", "", "ok", "next=second_factor", 300),
    ("login_verify", "*", "ok", "", 200),
    ("login_complete", "*", "ok", "", 200),
    ("login_complete", "", "ok", "trusted device", 60),
    ("login_password", "", "fail", "", 45),
    ("login_verify", "*", "fail", "wrong_code", 20),
    ("locked_out", "", "locked", "password:acct", 4),
    ("mail_login", "imap", "ok", "app password", 70),
    ("mail_login", "smtp", "ok", "app password", 20),
    ("mail_login", "imap", "fail", "wrong password", 12),
    ("app_login_approved", "app", "ok", "push", 25),
    ("wechat_login_approved", "wechat", "ok", "once", 20),
    ("app_login_denied", "app", "not_me", "not_me", 1.5),
    ("wechat_login_denied", "wechat", "denied", "", 1),
    ("logout", "", "ok", "", 30),
    ("sign_in_new_device", "", "ok", "", 3),
    ("factor_bound", "*", "ok", "", 1),
    ("factor_unbound", "*", "ok", "verified by totp", 0.3),
    ("app_password_created", "", "ok", "Outlook", 1),
    ("password_changed", "", "ok", "", 0.5),
)
EXPIRED_PER_EVENT = 0.003  # login tickets left to expire on the phone, per event
HOURS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 15, 12, 9, 12, 15, 16, 14, 12, 9, 8, 7, 5, 3, 2]  # Beijing time
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0",
    "Microsoft Outlook 16.0",
)


def account_name(index: int) -> str:
    surname, given = SURNAMES[index % len(SURNAMES)], GIVEN[(index // len(SURNAMES)) % len(GIVEN)]
    return f"{surname}.{given}{index:05d}@{DOMAIN}"


def seed(
    users: int, events: int, days: int = 30, now: datetime | None = None, say: Callable[[str], None] = print
) -> dict[str, int]:
    """Create the accounts, factors, app passwords and events; returns how many of each."""
    now = now or utcnow()
    if User.by_account(account_name(0)) is not None:
        raise Conflict(f"demo-large data exists already ({account_name(0)}); start from an empty database")
    rng = random.Random(20261203)
    people = _users(users, now, rng)
    say(f"{len(people)} accounts")
    methods, factors = _factors(people, now, days, rng)
    say(f"{sum(1 for m in methods if m)} accounts with a second factor")
    app_passwords = _app_passwords(people, methods, now, rng)
    written = _events(people, methods, events, days, now, rng, say)
    report_summary.backfill_adoption(days, now)
    return {"accounts": len(people), "factors": factors, "app passwords": app_passwords, "events": written}


def _insert(model, fields, rows) -> None:
    from portal.db import db

    for start in range(0, len(rows), BATCH):
        with db.atomic():
            model.insert_many(rows[start : start + BATCH], fields=fields).execute()


def _users(count: int, now: datetime, rng: random.Random) -> list[tuple[int, str]]:
    """(id, account) of each new account, created 30 days to 4 years ago."""
    password_hash = passwords.hash_password(DEMO_PASSWORD)
    fields = [User.account, User.name, User.password_hash, User.created_at, User.password_changed_at]
    rows = []
    for index in range(count):
        created = now - timedelta(days=rng.uniform(30, 1500))
        account = account_name(index)
        rows.append((account, account.split("@")[0].split(".")[0].title(), password_hash, created, created))
    _insert(User, fields, rows)
    ids = dict(User.select(User.account, User.id).where(User.account.endswith(f"@{DOMAIN}")).tuples())
    return [(ids[row[0]], row[0]) for row in rows]


def _factors(people, now: datetime, days: int, rng: random.Random) -> tuple[list[str], int]:
    """Bind each protected account's method (10 % also a second one); the account's method or ""."""
    secret = crypto.encrypt("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")  # one TOTP seed for all: encryption is slow too
    names, weights = zip(*METHOD_SHARES, strict=True)
    chosen, rows = [], []
    fields = [Factor.user, Factor.method, Factor.label, Factor.secret, Factor.external_id, Factor.created_at]
    for user_id, _account in people:
        if rng.random() >= PROTECTED_SHARE:
            chosen.append("")
            continue
        picked = {rng.choices(names, weights)[0]}
        if rng.random() < 0.1:
            picked.add(rng.choices(names, weights)[0])
        for method in picked:
            bound = now - timedelta(days=rng.expovariate(1 / (days * 3)))  # adoption still growing
            rows.append((user_id, method, "", secret if method == "totp" else "", f"demo-{user_id}", bound))
        chosen.append(sorted(picked)[0])
    _insert(Factor, fields, rows)
    return chosen, len(rows)


def _app_passwords(people, methods: list[str], now: datetime, rng: random.Random) -> int:
    fields = [AppPassword.user, AppPassword.name, AppPassword.secret_hash, AppPassword.created_at]
    rows = [
        (user_id, "Outlook", crypto.token_hash(f"demo-large-{user_id}"), now - timedelta(days=rng.uniform(0, 300)))
        for (user_id, _account), method in zip(people, methods, strict=True)
        if method and rng.random() < 0.3
    ]
    _insert(AppPassword, fields, rows)
    return len(rows)


def _day_sizes(events: int, days: int, now: datetime) -> list[tuple[datetime, int]]:
    """(local midnight as UTC, events that day) for each day, oldest first; weekends see half as many."""
    today = report_summary.local_day(now)
    span = [today - timedelta(days=back) for back in range(days - 1, -1, -1)]
    weights = [0.5 if day.weekday() >= 5 else 1.0 for day in span]
    sizes = [int(events * w / sum(weights)) for w in weights]
    sizes[-1] += events - sum(sizes)
    return [(report_summary.day_start(day), size) for day, size in zip(span, sizes, strict=True)]


def _events(people, methods, count: int, days: int, now: datetime, rng, say) -> int:
    kinds = [row[:4] for row in MIX]
    weights = [row[4] for row in MIX]
    fields = [AuditEvent.created_at, AuditEvent.user, AuditEvent.account, AuditEvent.event, AuditEvent.method]
    fields += [AuditEvent.outcome, AuditEvent.ip, AuditEvent.user_agent, AuditEvent.detail]
    counts: Counter = Counter()
    written = 0
    for midnight, size in _day_sizes(count, days, now):
        times = sorted(
            midnight + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
            for hour in rng.choices(range(24), HOURS, k=size)
        )
        times = [t for t in times if t <= now]
        rows = []
        for at, (event, method, outcome, detail) in zip(times, rng.choices(kinds, weights, k=len(times)), strict=True):
            person = rng.randrange(len(people))
            user_id, account = people[person]
            if method == "*":
                method = methods[person] or "totp"
            ip = f"10.{rng.randrange(8, 40)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            rows.append((at, user_id, account, event, method, outcome, ip, rng.choice(AGENTS), detail))
            counts[(report_summary.local_day(at), event, method, outcome)] += 1
        expired = sum(1 for _ in range(len(rows)) if rng.random() < EXPIRED_PER_EVENT)
        if rows and expired:
            counts[(report_summary.local_day(rows[0][0]), report_summary.EXPIRED_TICKET, "app", "expired")] += expired
        _insert(AuditEvent, fields, rows)
        written += len(rows)
        say(f"{written} events (to {report_summary.local_day(midnight):%Y-%m-%d})")
    report_summary.add_counts(counts)
    return written
