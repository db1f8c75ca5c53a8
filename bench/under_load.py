"""make bench, part 2: the portal under gunicorn (gunicorn.conf.py), measured over real HTTP.

The second-step login (password, then a 第三方 OTP code) is timed with ten logins at once: once on
its own, once while ten mini-program logins hang on a WeChat API that does not answer (it accepts
the connection and stays silent for 60 s). A bare Flask hello under the same gunicorn configuration,
in the same run, is the yardstick. Bounded: every request has a timeout, the servers stop at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyotp
import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-password-1"
AT_ONCE = 10  # logins sent together, and WeChat calls hanging
ROUNDS = 3
SILENCE = 60  # seconds the stalled WeChat API keeps a connection without answering


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers (until SILENCE or stop)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        self.stopped.wait(SILENCE)
        conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


def gunicorn(app: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start gunicorn with the committed configuration; wait until it answers."""
    port = free_port()
    environment = {**os.environ, **env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESS_LOG": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url + "/healthz", timeout=1)
            return process, url
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gunicorn {app} did not start")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def seed(database: Path, users: int) -> list[tuple[str, str]]:
    """Accounts with 第三方 OTP bound; returns (account, secret) pairs."""
    from portal import create_app, crypto, migrations
    from portal.db import db
    from portal.models import Factor, User
    from portal.services import passwords

    app = create_app(bench_config(database))
    pairs = []
    with app.app_context(), db.connection_context():
        migrations.upgrade()
        password_hash = passwords.hash_password(PASSWORD)
        with db.atomic():
            for index in range(users):
                user = User.create(account=f"load{index}@mail.xamd.edu.cn", password_hash=password_hash)
                secret = pyotp.random_base32()
                Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
                pairs.append((user.account, secret))
    return pairs


def bench_config(database: Path) -> dict[str, str]:
    return {
        "ENV": "production",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "bench-secret-" + "s" * 40,
        "DATA_KEY": "bench-data-" + "d" * 40,
        "THROTTLE_IP_FAILURES": "100000",  # every login comes from 127.0.0.1
    }


def totp_login(url: str, account: str, secret: str) -> float:
    """Seconds for the whole second-step login of one browser (login form, password, code)."""
    start = time.perf_counter()
    with requests.Session() as browser:
        form = browser.get(url + "/login", timeout=30).text
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        step = browser.post(
            url + "/login", data={"csrf_token": token, "account": account, "password": PASSWORD}, timeout=30
        )
        assert step.url.endswith("/login/verify"), step.url
        done = browser.post(
            url + "/login/verify",
            data={"csrf_token": token, "method": "totp", "code": pyotp.TOTP(secret).now()},
            timeout=30,
        )
        assert done.url.rstrip("/") == url, (done.status_code, done.url)
    return time.perf_counter() - start


def wechat_login(url: str) -> int:
    """A mini-program sign-in (the WeChat API hangs): the status the portal answers with."""
    return requests.post(url + "/api/wx/v1/session", json={"code": "bench-code"}, timeout=60).status_code


def logins_at_once(url: str, accounts: list[tuple[str, str]], hanging: bool) -> list[float]:
    samples: list[float] = []
    with ThreadPoolExecutor(max_workers=AT_ONCE * 2) as pool:
        for round_ in range(ROUNDS):
            batch = accounts[round_ * AT_ONCE : (round_ + 1) * AT_ONCE]
            stalled = [pool.submit(wechat_login, url) for _ in range(AT_ONCE)] if hanging else []
            if hanging:
                time.sleep(0.5)  # the WeChat calls are in flight, holding their threads
            samples += [f.result() for f in [pool.submit(totp_login, url, *pair) for pair in batch]]
            statuses = {f.result() for f in stalled}
            assert statuses <= {503}, statuses  # the stalled ones end in a clear temporary error
    return samples


def hello_latency(url: str, count: int = 200) -> list[float]:
    samples = []
    with requests.Session() as client:
        for _ in range(count):
            start = time.perf_counter()
            client.get(url + "/", timeout=10)
            samples.append(time.perf_counter() - start)
    return samples


def line(name: str, samples: list[float], unit: str = "ms") -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000
    return f"{name:44} n={len(samples):4}  mean={statistics.mean(samples) * 1000:8.1f} {unit}  p95={p95:8.1f} {unit}"


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    accounts = seed(folder / "load.db", 2 * ROUNDS * AT_ONCE)
    silent = SilentServer()
    env = {f"PORTAL_{key}": value for key, value in bench_config(folder / "load.db").items()}
    env |= {
        "PORTAL_WECHAT_APPID": "wxbench00000000001",
        "PORTAL_WECHAT_SECRET": "x",
        "PORTAL_WECHAT_API_BASE": silent.url,
    }
    portal, url = gunicorn("wsgi:app", env)
    hello, hello_url = gunicorn("bench.hello:app", {})
    try:
        base = hello_latency(hello_url)
        normal = logins_at_once(url, accounts[: ROUNDS * AT_ONCE], hanging=False)
        stalled = logins_at_once(url, accounts[ROUNDS * AT_ONCE :], hanging=True)
    finally:
        stop(portal)
        stop(hello)
        silent.stop()
    print(f"under gunicorn ({ROOT / 'gunicorn.conf.py'}), {AT_ONCE} logins at once:")
    print(line("bare Flask hello (same gunicorn)", base))
    print(line("TOTP login (password + code)", normal))
    print(line(f"TOTP login, {AT_ONCE} WeChat calls hanging", stalled))
    p95 = sorted(stalled)[max(0, int(len(stalled) * 0.95) - 1)]
    print(f"{'hanging WeChat: TOTP login p95':44} {p95:.2f} s (target under 2 s)")


if __name__ == "__main__":
    main()
