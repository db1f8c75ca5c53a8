"""Web layer: blueprints, security headers, error pages, template helpers."""

from __future__ import annotations

from flask import Flask, current_app, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError, CSRFProtect
from htmx_flask import Htmx
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import config as config_module
from portal import json_api, timezone
from portal.db import UNAVAILABLE_ERRORS
from portal.services import policy, useragent
from portal.services.errors import DomainError
from portal.web import (
    account_sessions,
    activity,
    admin,
    app_passwords,
    auth,
    continuation,
    devices,
    forward_auth,
    guard,
    home,
    language,
    mail_auth,
    metrics,
    password,
    pwa,
    qr,
    recovery_codes,
    render,
    scan,
    secure_account,
    security,
    simulators,
    step_up,
)

csrf = CSRFProtect()
BUSY = _l("系统繁忙,请稍后再试")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def init_app(app: Flask) -> None:
    if int(app.config["TRUSTED_PROXIES"]):
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    Htmx(app)
    csrf.init_app(app)
    app.before_request(_refuse_nul_bytes)
    guard.init_app(app)
    pages = (
        auth,
        home,
        security,
        step_up,
        password,
        devices,
        account_sessions,
        activity,
        secure_account,
        app_passwords,
        recovery_codes,
    )
    for module in (*pages, language, scan, pwa, admin):
        app.register_blueprint(module.bp)
    # nginx's mail auth_http: no cookies, no session; the caller is checked by the view instead.
    config_module.check_mail_auth(app.config)
    app.register_blueprint(mail_auth.bp)
    guard.exempt_blueprint(mail_auth.bp.name)
    csrf.exempt(mail_auth.bp)
    # nginx auth_request for other campus apps: checked by its shared secret, the session from the cookie.
    config_module.check_forward_auth(app.config)
    app.register_blueprint(forward_auth.bp)
    guard.exempt_blueprint(forward_auth.bp.name)
    csrf.exempt(forward_auth.bp)
    # Prometheus: no cookies, no session; the caller's address is checked by the view.
    metrics.init_app(app)
    app.register_blueprint(metrics.bp)
    guard.exempt_blueprint(metrics.bp.name)
    if app.config["DEV_SIMULATORS"]:
        app.register_blueprint(simulators.bp)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.jinja_env.filters["localtime"] = timezone.local
    app.jinja_env.filters["device"] = lambda ua: " · ".join(useragent.describe(ua or ""))
    app.jinja_env.globals["qr_svg"] = qr.svg
    app.jinja_env.globals["support_contact"] = policy.support_contact  # the policy's, read when shown


def _refuse_nul_bytes() -> None:
    """PostgreSQL text cannot hold NUL: refuse such input up front instead of failing later with a 500."""
    if guard.is_exempt():
        return
    fields = [*request.args.items(multi=True), *request.form.items(multi=True)]
    if any("\x00" in key or "\x00" in value for key, value in fields) or "\x00" in request.user_agent.string:
        raise BadRequest(_("请求包含无效字符"))


def _csp() -> str:
    """The policy; a login on its way back to an app (SSO, forward auth) may also post to that app's origin."""
    extra = continuation.form_action_origins()
    return CSP.replace("form-action 'self'", " ".join(["form-action 'self'", *extra])) if extra else CSP


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", _csp())
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.vary.add("HX-Request")
    hsts = int(current_app.config["HSTS_SECONDS"])
    if current_app.config["SESSION_COOKIE_SECURE"] and hsts:  # https only: browsers ignore it over http anyway
        response.headers["Strict-Transport-Security"] = f"max-age={hsts}"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(message: str, status: int, code: str = "error"):
    """An error as a page, or (for htmx) as a notice swapped into the page's #flash area."""
    if request.path.startswith("/api/"):
        return json_api.envelope(code, message, status)
    if render.is_htmx():
        return render.retarget(make_response(render_template("_flash.html", message=message), 200), "#flash")
    return render_template("error.html", message=message, status=status), status


def _csrf_error(_exc: CSRFError):
    return _error_page(_("页面已过期或请求来源无效,请刷新页面后重试"), 400)


def _domain_error(exc: DomainError):
    return _error_page(exc.message, exc.status, exc.code)


def _http_error(exc: HTTPException):
    messages = {404: _("页面不存在"), 405: _("不支持的请求方式"), 413: _("提交的内容过大")}
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    status = exc.code or 500
    return _error_page(messages.get(status, exc.description or _("请求有误")), status, codes.get(status, "bad_request"))


def _unexpected_error(exc: Exception):
    if isinstance(exc, UNAVAILABLE_ERRORS):  # busy, locked or unreachable: the database's state, not a bug
        current_app.logger.warning("database unavailable: %r", exc)
        return _error_page(str(BUSY), 503, "unavailable")
    current_app.logger.exception("unhandled error", exc_info=exc)
    return _error_page(_("系统繁忙,请稍后再试;您的数据未受影响"), 500, "internal_error")
