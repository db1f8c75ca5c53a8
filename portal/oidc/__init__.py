"""OpenID Connect provider: the second step in front of the webmail and other campus apps.

``clients`` (registration), ``keys`` (signing keys, rotation), ``tokens`` (what a code or token
proves and when it ends), ``provider`` (Authlib's server wired to them), ``views`` (the endpoints),
``cli`` (``flask --app wsgi oidc …``).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from portal.oidc import cli, provider, views
    from portal.web import csrf, guard

    provider.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(views.api)
    guard.exempt_blueprint(views.api.name)
    csrf.exempt(views.api)
    cli.init_app(app)
