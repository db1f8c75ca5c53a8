"""Request ids and the application log: every answer carries ``X-Request-Id`` (the proxy's, if it sent
a sane one, else a new one); with PORTAL_LOG_FORMAT=json the app's log lines are JSON objects naming
that id, so a 500 in the log is found from the id a user reads off the error page or the proxy logged."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request

HEADER = "X-Request-Id"
SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the request's id, method and path."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            entry |= {"request_id": current_id(), "method": request.method, "path": request.path}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def current_id() -> str:
    """This request's id (made on first use)."""
    if "request_id" not in g:
        given = request.headers.get(HEADER, "")
        g.request_id = given if SANE_ID.match(given) else uuid.uuid4().hex
    return g.request_id


def log_as_json(app: Flask) -> list[logging.Logger]:
    """The app's and the portal's loggers write JSON lines to stderr (gunicorn's error log); returns them."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    loggers = [app.logger, logging.getLogger("portal")]
    for logger in loggers:
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return loggers


def init_app(app: Flask) -> None:
    log_format = str(app.config["LOG_FORMAT"]).strip().lower()
    if log_format not in FORMATS:
        from portal.config import ConfigError

        raise ConfigError(f"PORTAL_LOG_FORMAT must be one of {', '.join(FORMATS)}, got {log_format!r}")
    if log_format == "json":
        log_as_json(app)

    app.jinja_env.globals["request_id"] = current_id

    @app.after_request
    def _tag(response):
        response.headers[HEADER] = current_id()
        return response
