"""Login: account + password (/login), second step (/login/verify), logout."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request, url_for

from portal.services import factors, login, trust
from portal.services.errors import DomainError
from portal.services.policy import METHODS
from portal.web import guard
from portal.web.render import redirect_to

bp = Blueprint("auth", __name__)


@bp.get("/login")
@guard.public
def login_form():
    if g.login is not None:
        return redirect_to(guard.home_for(g.login.stage))
    return render_template("auth/login.html", account="")


@bp.post("/login")
@guard.public
def login_submit():
    account = request.form.get("account", "")
    try:
        step = login.password_step(
            account, request.form.get("password", ""), g.client, g.login, request.cookies.get(guard.TRUST_COOKIE)
        )
    except DomainError as exc:
        return render_template("auth/login.html", account=account, error=exc.message), exc.status
    guard.set_session_cookie(step.token)
    return redirect_to(guard.home_for(step.stage))


@bp.get("/login/verify")
@guard.second_step
def verify_form():
    return _verify_page()


@bp.post("/login/verify")
@guard.second_step
def verify_submit():
    method = request.form.get("method", "")
    try:
        step = login.second_step(g.login, method, request.form.get("code"), bool(request.form.get("trust")), g.client)
    except DomainError as exc:
        return _verify_page(method, error=exc.message, status=exc.status)
    guard.set_session_cookie(step.token)
    if step.trust_token:
        guard.set_trust_cookie(step.trust_token, int(trust.lifetime().total_seconds()))
    return redirect_to(url_for("home.welcome"))


def _verify_page(method: str | None = None, error: str | None = None, status: int = 200):
    bound = factors.bound_methods(g.user)
    if not bound:  # the factor was removed meanwhile (e.g. unbound from another browser)
        error = "该账号已没有可用的验证方式,请返回登录页重新登录"
        return render_template("auth/verify.html", method=None, choices=[], error=error, trust_days=0), status
    method = method if method in bound else request.args.get("method", "")
    method = method if method in bound else bound[0]
    choices = [METHODS[m] for m in bound]
    days = int(trust.lifetime().days)
    return render_template(
        "auth/verify.html", method=METHODS[method], choices=choices, error=error, trust_days=days
    ), status


@bp.post("/logout")
@guard.public
def logout():
    if g.login is not None:
        login.logout(g.login, g.client)
    guard.set_session_cookie(None)
    return redirect_to(url_for("auth.login_form"))
