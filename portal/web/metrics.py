"""GET /metrics for Prometheus (allow-listed callers only: PORTAL_METRICS_ALLOW), and the timing of
every request that feeds it."""

from __future__ import annotations

import ipaddress

from flask import Blueprint, Flask, current_app, g, make_response, request
from prometheus_client import CONTENT_TYPE_LATEST

from portal import config as config_module
from portal import metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def exposition():
    if not _allowed(request.remote_addr):
        return make_response("forbidden\n", 403, {"Content-Type": "text/plain"})
    return make_response(metrics.exposition(), 200, {"Content-Type": CONTENT_TYPE_LATEST})


def _allowed(remote_addr: str | None) -> bool:
    networks = config_module.parse_networks(str(current_app.config["METRICS_ALLOW"]), "PORTAL_METRICS_ALLOW")
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 is 127.0.0.1
    return any(address in network for network in networks)


def init_app(app: Flask) -> None:
    config_module.parse_networks(str(app.config["METRICS_ALLOW"]), "PORTAL_METRICS_ALLOW")  # refuse a bad one now
    app.before_request(_start)
    app.after_request(_answered)


def _start() -> None:
    g.metrics_started = metrics.started()


def _answered(response):
    if "metrics_started" in g:
        metrics.answered(request.endpoint, response.status_code, g.metrics_started)
    return response
