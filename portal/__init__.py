"""Mail 2FA portal: the application factory."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from portal import config as config_module
from portal import db as db_module

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app: configuration, database, extensions, blueprints, CLI."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    settings = config_module.load(config)
    config_module.ensure_secrets(settings, app.instance_path)
    app.config.update(settings)
    https = str(settings["PUBLIC_URL"]).startswith("https://")
    app.config.update(
        SESSION_COOKIE_NAME="__Host-portal_csrf" if https else "portal_csrf",  # Flask's cookie: the CSRF token
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the signed cookie that holds it
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    database = db_module.open_database(str(settings["DATABASE_URL"]), str(ROOT), int(settings["DATABASE_TIMEOUT"]))
    db_module.bind(database)
    db_module.init_app(app)

    import wechat_backend
    from portal import cli, directory, i18n, logs, oidc, web
    from portal.services import outbox
    from portal.web import app_api  # noqa: F401 -- registered below

    logs.init_app(app)
    i18n.init_app(app)
    directory.init_app(app)
    web.init_app(app)
    # JSON APIs authenticate each request themselves (bearer token, device signature): no cookies,
    # so neither the login guard nor CSRF applies.
    for api in (wechat_backend.blueprint, web.app_api.bp):
        app.register_blueprint(api)
        web.guard.exempt_blueprint(api.name)
        web.csrf.exempt(api)
    oidc.init_app(app)
    cli.init_app(app)
    outbox.init_app(app)
    return app
