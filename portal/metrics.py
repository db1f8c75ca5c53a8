"""Prometheus metrics: what happened (from the audit trail), mail logins, request latency and errors.

Counted in-process by prometheus-client. Under gunicorn set PROMETHEUS_MULTIPROC_DIR to an empty
directory (one per start; gunicorn.conf.py clears it and marks dead workers) so that /metrics adds up
every worker; without it (one process, tests) the process's own registry is served.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as multiprocess_mode

AUDIT_EVENTS = Counter(
    "portal_audit_events", "Audit events written: logins, second steps, approvals, changes", ["event", "outcome"]
)
MAIL_AUTH = Counter(
    "portal_mail_auth", "IMAP/POP3/SMTP login decisions (nginx auth_http, checkpassword)", ["protocol", "result"]
)
REQUESTS = Counter("portal_http_requests", "HTTP requests answered", ["endpoint", "status"])
ERRORS = Counter("portal_http_errors", "HTTP answers of status 5xx", ["endpoint"])
LATENCY = Histogram(
    "portal_request_seconds",
    "Time to answer a request, by endpoint",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROTOCOLS = ("imap", "pop3", "smtp")


def audit_event(event: str, outcome: str) -> None:
    AUDIT_EVENTS.labels(event=event, outcome=outcome).inc()


def mail_auth(protocol: str, ok: bool, reason: str = "") -> None:
    """One mail-client login decision; ``reason`` names a refusal (app_password_required, throttled, …)."""
    MAIL_AUTH.labels(
        protocol=protocol if protocol in PROTOCOLS else "other", result="ok" if ok else reason or "refused"
    ).inc()


def started() -> float:
    return time.perf_counter()


def answered(endpoint: str | None, status: int, since: float) -> None:
    name = endpoint or "unmatched"  # 404s: one label, not one per scanned path
    LATENCY.labels(endpoint=name).observe(time.perf_counter() - since)
    REQUESTS.labels(endpoint=name, status=str(status)).inc()
    if status >= 500:
        ERRORS.labels(endpoint=name).inc()


def exposition() -> bytes:
    """The text format of every metric: of all gunicorn workers in multiprocess mode, else of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess_mode.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
