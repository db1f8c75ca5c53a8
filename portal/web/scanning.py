"""The polling status line shared by every QR dialog (settings and the login second step)."""

from __future__ import annotations

from flask import render_template

from portal.models import Ticket


def scan_status(ticket: Ticket, poll_url: str, state: str) -> str:
    """A self-replacing element that polls ``poll_url`` every 2 s until the state is final."""
    return render_template("_scan_status.html", ticket=ticket, poll=poll_url, state=state)
