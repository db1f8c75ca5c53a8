"""Page or fragment: one place that decides what an htmx request gets back."""

from __future__ import annotations

from flask import Response, make_response, redirect, render_template, request
from jinja2_fragments.flask import render_block


def page_or_fragment(template: str, block: str, status: int = 200, trigger: str | None = None, **context) -> Response:
    """The named block for htmx requests, the whole page otherwise; ``trigger`` sets HX-Trigger."""
    if request.headers.get("HX-Request") == "true":
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    if trigger:
        response.headers["HX-Trigger"] = trigger
    return response


def redirect_to(url: str) -> Response:
    """A redirect that htmx follows as a full navigation (never a 3xx to htmx)."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)


def retarget(response, target: str) -> Response:
    """Send an htmx response somewhere else than the requesting element (e.g. the whole dialog)."""
    response.headers["HX-Retarget"] = target
    response.headers["HX-Reswap"] = "innerHTML"
    return response
