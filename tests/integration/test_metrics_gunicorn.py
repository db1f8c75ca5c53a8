"""/metrics under gunicorn with two workers (PROMETHEUS_MULTIPROC_DIR): one scrape adds up every worker."""

from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from portal import create_app, migrations
from portal.db import db
from tests.conftest import make_config
from tests.helpers import free_port
from tests.integration.procs import HOST, Process

ROOT = Path(__file__).resolve().parents[2]
HEALTHZ = 'portal_request_seconds_count{endpoint="home.healthz"}'


def test_one_scrape_counts_the_requests_of_every_worker(tmp_path):
    database = f"sqlite:///{tmp_path / 'portal.db'}"
    app = create_app(make_config(database))
    with app.app_context(), db.connection_context():
        migrations.upgrade()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_12345.db").write_bytes(b"left over from the last start")
    port = free_port()
    config = make_config(database)
    env = {
        "PATH": os.environ["PATH"],
        "PORTAL_ENV": "testing",
        "PORTAL_DATABASE_URL": database,
        "PORTAL_SECRET_KEY": config["SECRET_KEY"],
        "PORTAL_DATA_KEY": config["DATA_KEY"],
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GUNICORN_BIND": f"{HOST}:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
        "GUNICORN_ACCESS_LOG": "",
    }
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"]
    process = Process("portal", gunicorn, tmp_path / "portal.log", env=env)
    try:
        process.wait_for_port(port)
        sent = 0
        with ThreadPoolExecutor(8) as pool:  # parallel connections: both workers get some (at most 400)
            while len(workers_seen(metrics_dir)) < 2 and sent < 400:
                answers = list(pool.map(lambda _: requests.get(f"http://{HOST}:{port}/healthz", timeout=10), range(20)))
                assert all(answer.status_code == 200 for answer in answers)
                sent += len(answers)
        text = requests.get(f"http://{HOST}:{port}/metrics", timeout=10).text
    finally:
        process.stop()
    assert len(workers_seen(metrics_dir)) == 2
    assert float(re.search(rf"^{re.escape(HEALTHZ)} (\S+)$", text, re.M).group(1)) == sent
    assert not (metrics_dir / "counter_12345.db").exists()  # the last start's files went at this one


def workers_seen(directory: Path) -> set[str]:
    """The worker pids that have written request timings."""
    return {name.rsplit("_", 1)[-1] for name in os.listdir(directory) if name.startswith("histogram_")}
