"""Benchmarks (make bench): latency of the hot paths on a throwaway SQLite database.

Prints one line per case: operations, mean and p95 in milliseconds, and peak memory of the process.
Not a test: numbers are for comparing changes on the same machine.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import pyotp

from portal import create_app, crypto, directory, migrations
from portal.db import db
from portal.directory.dev_slapd import SLAPD, Person, Slapd
from portal.models import Factor
from portal.services import accounts, factors, sessions, throttle
from portal.services.client import Client

PASSWORD = "Bench-password-1"


def measure(name: str, count: int, action, rate: bool = False) -> None:
    samples = []
    for index in range(count):
        start = time.perf_counter()
        action(index)
        samples.append((time.perf_counter() - start) * 1000)
    p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
    per_second = f"  {1000 / statistics.mean(samples):7.1f}/s" if rate else ""
    print(f"{name:38} n={count:5}  mean={statistics.mean(samples):8.2f} ms  p95={p95:8.2f} ms{per_second}")


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    app = create_app(bench_config(folder / "bench.db"))
    client = Client.of("127.0.0.1", "bench")
    with app.test_request_context(), db.connection_context():
        migrations.upgrade()
        user = accounts.create("bench@mail.xamd.edu.cn", PASSWORD)
        secret = pyotp.random_base32()
        Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
        token = sessions.start(user, sessions.FULL, client)

        measure("password check, local argon2id", 20, lambda i: directory.authenticate(user.account, PASSWORD), True)
        measure("session resolve (every request)", 2000, lambda i: sessions.resolve(token))
        measure(
            "throttle reserve + release", 2000, lambda i: throttle.begin("bench", user.account, "10.0.0.1").succeeded()
        )
        measure("TOTP verify, wrong code", 500, lambda i: _wrong(user, client))

    web = app.test_client()
    measure("GET /healthz", 500, lambda i: web.get("/healthz"))
    measure("GET /login (page render)", 500, lambda i: web.get("/login"))
    web.set_cookie("portal_sid", token)
    assert web.get("/settings/security/2fa").status_code == 200, "bench session not logged in"
    measure("GET /settings/security/2fa (page)", 300, lambda i: web.get("/settings/security/2fa"))
    ldap_logins(folder)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak resident memory':38} {peak_mb:.1f} MiB")


def ldap_logins(folder: Path) -> None:
    """The same password step against a throw-away slapd (StartTLS, kept connections), if installed."""
    if not Path(SLAPD).exists():
        print(f"{'password check, LDAP':38} skipped: slapd not installed (apt-get install slapd)")
        return
    server = Slapd(folder / "slapd", [Person("bench", "ldapbench@mail.xamd.edu.cn", PASSWORD, "Bench")]).start()
    try:
        app = create_app(bench_config(folder / "bench-ldap.db") | server.settings())
        with app.test_request_context(), db.connection_context():
            migrations.upgrade()
            directory.authenticate("bench", PASSWORD)  # the first login opens the connections and the account
            measure("password check, LDAP (by uid)", 300, lambda i: directory.authenticate("bench", PASSWORD), True)
    finally:
        server.remove()


def bench_config(database: Path) -> dict:
    return {
        "ENV": "testing",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "bench-" + "s" * 40,
        "DATA_KEY": "bench-" + "d" * 40,
        "THROTTLE_ACCOUNT_FAILURES": 10**9,
        "THROTTLE_IP_FAILURES": 10**9,
    }


def _wrong(user, client) -> None:
    try:
        factors.verify(user, "totp", "000000", client, "bench")
    except Exception:  # a wrong code is the expected outcome
        return


if __name__ == "__main__":
    main()
