"""portal/web/app_api.openapi.yaml documents exactly the App device API's routes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "portal" / "web" / "app_api.openapi.yaml"
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def test_documented_operations_are_exactly_the_routes(app):
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.")
    base = spec["servers"][0]["url"].rstrip("/")
    documented = {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", base + path))
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    routed = {
        (method, re.sub(r"<[^>]+>", "{}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("app_api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_every_documented_operation_has_an_error_response_in_the_envelope():
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                errors = [code for code in operation["responses"] if code.startswith(("4", "5"))]
                assert errors, f"{method} has no documented error"
                for code in errors:
                    assert operation["responses"][code] == {"$ref": "#/components/responses/Error"}
