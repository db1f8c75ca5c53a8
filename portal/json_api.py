"""Shared by the JSON APIs (mini-program, App): the error envelope and strict body parsing."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_babel import gettext as _

from portal.services.errors import DomainError, InvalidInput


def envelope(code: str, message: str, status: int):
    """{"error": {"code", "message"}} with its HTTP status."""
    return jsonify(error={"code": code, "message": str(message)}), status


def use_envelope(blueprint: Blueprint) -> None:
    """Domain errors raised in this blueprint's views become the JSON envelope."""
    blueprint.register_error_handler(DomainError, lambda exc: envelope(exc.code, exc.message, exc.status))


def body() -> dict:
    """The request's JSON object ({} when there is no body); anything else is a 400."""
    parsed = request.get_json(silent=True)
    if (parsed is None and request.content_length) or (parsed is not None and not isinstance(parsed, dict)):
        raise InvalidInput(_("请求体必须是 JSON 对象"), code="invalid_json")
    return parsed or {}


def flag(data: dict, key: str) -> bool:
    """A boolean field (false when absent); strings and numbers are refused, not guessed."""
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(_("%(field)s 必须是 true 或 false", field=key), code="invalid_input")
    return value
