"""Page or fragment: the one place that reads htmx's request headers and sets its response headers
(htmx-flask: ``request.htmx`` and its ``make_response``)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response, redirect, render_template, stream_with_context
from htmx_flask import make_response, request
from jinja2_fragments.flask import render_block

from portal.models import Ticket
from portal.services import csv_export


def is_htmx() -> bool:
    """Whether htmx sent this request (a fragment is wanted), not a full page load."""
    return bool(request.htmx)


def targets(element_id: str) -> bool:
    """Whether htmx asks for the block that replaces ``element_id`` (hx-target)."""
    return request.htmx.target == element_id


def page_or_fragment(template: str, block: str, status: int = 200, trigger: str | None = None, **context) -> Response:
    """The named block for htmx requests, the whole page otherwise; ``trigger`` sets HX-Trigger."""
    body = render_block(template, block, **context) if is_htmx() else render_template(template, **context)
    return make_response(body, status, trigger=trigger) if trigger else make_response(body, status)


def redirect_to(url: str) -> Response:
    """A redirect that htmx follows as a full navigation (never a 3xx to htmx)."""
    return make_response("", 200, redirect=url) if is_htmx() else redirect(url)


def load_into(url: str, target: str) -> Response:
    """Have htmx load ``url`` into ``target`` (HX-Location); a plain redirect without JavaScript."""
    if not is_htmx():
        return redirect(url)
    return make_response("", 200, location={"path": url, "target": target, "swap": "innerHTML"})


def retarget(response, target: str) -> Response:
    """Send an htmx response somewhere else than the requesting element (e.g. the whole dialog)."""
    response.headers["HX-Retarget"] = target
    response.headers["HX-Reswap"] = "innerHTML"
    return response


def scan_status(ticket: Ticket, poll_url: str, state: str) -> str:
    """The self-replacing status line under every QR and push: it polls ``poll_url`` every 2 s until final."""
    return render_template("_scan_status.html", ticket=ticket, poll=poll_url, state=state)


def csv_download(filename: str, header: Iterable[object], rows: Iterable[Iterable[object]]) -> Response:
    """A CSV attachment streamed as ``rows`` are read (a large export never sits in memory)."""
    body = stream_with_context(csv_export.lines(header, rows))
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
