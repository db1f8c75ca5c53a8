"""The provider's HTTP endpoints (DESIGN §5 "Single sign-on"); the protocol work is Authlib's (provider.py)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError
from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, url_for
from flask_babel import gettext as _
from joserfc import jwt
from joserfc.errors import JoseError

from portal.models import utcnow
from portal.oidc import clients, keys, tokens
from portal.oidc.provider import SCOPES, issuer, server, user_info
from portal.services import login, sessions
from portal.web import continuation, guard
from portal.web.render import redirect_to

bp = Blueprint("oidc", __name__)
# Back-channel endpoints authenticate the client (or the bearer) themselves: no cookies, no CSRF.
api = Blueprint("oidc_api", __name__)


@bp.before_request
@api.before_request
def _issuer_must_be_https():
    """An http:// issuer only on loopback or outside production (tokens would cross the network in clear)."""
    config = current_app.config
    parts = urlsplit(str(config["PUBLIC_URL"]))
    if parts.scheme == "https" or config["ENV"] != "production" or parts.hostname in clients.LOOPBACK_HOSTS:
        return None
    response = jsonify(
        error="temporarily_unavailable", error_description="single sign-on needs an https PORTAL_PUBLIC_URL"
    )
    response.status_code = 503
    return response


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@api.get("/.well-known/openid-configuration")
def discovery():
    base = issuer()
    return jsonify(
        issuer=base,
        authorization_endpoint=f"{base}/oauth/authorize",
        token_endpoint=f"{base}/oauth/token",
        userinfo_endpoint=f"{base}/oauth/userinfo",
        jwks_uri=f"{base}/oauth/jwks",
        introspection_endpoint=f"{base}/oauth/introspect",
        revocation_endpoint=f"{base}/oauth/revoke",
        end_session_endpoint=f"{base}/oauth/logout",
        scopes_supported=SCOPES,
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=["authorization_code", "refresh_token"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=[keys.ALGORITHM],
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        introspection_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        revocation_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        code_challenge_methods_supported=["S256"],
        claims_supported=["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "email", "name"],
        prompt_values_supported=["none", "login"],
    )


@api.get("/oauth/jwks")
def jwks():
    return jsonify(keys.public_jwks())


@bp.get("/oauth/authorize")
@guard.public
def authorize():
    """Check the request, make sure this browser passed both steps (sending it through /login), issue a code."""
    session = g.login
    full = session is not None and session.stage == sessions.FULL
    try:
        grant = server.get_consent_grant(end_user=g.user if full else None)
    except OAuth2Error as error:
        if error.redirect_uri is None or isinstance(error, InvalidClientError):
            return _error_page(error)  # unknown client or redirect URI: never redirect there
        return server.handle_error_response(None, error)
    if not full or _must_reauthenticate(session):
        if full:  # prompt=login / max_age: this login is too old for the client; log in again
            login.logout(session, g.client)
            guard.set_session_cookie(None)
        continuation.remember(_without_prompt())
        return redirect_to(url_for("auth.login_form") if full else continuation.after_login(_stage(session)))
    if not tokens.passed_second_step(session):
        return render_template("oidc/needs_factor.html", client=grant.request.client.row), 403
    return server.create_authorization_response(grant_user=g.user, grant=grant)


def _stage(session) -> str | None:
    return session.stage if session is not None else None


def _must_reauthenticate(session) -> bool:
    if "login" in request.args.get("prompt", "").split():
        return True
    max_age = request.args.get("max_age", "")
    if max_age.isdigit():
        return utcnow() - tokens.auth_time(session) > timedelta(seconds=int(max_age))
    return False


def _without_prompt() -> str:
    """The request to come back to after the login: ``prompt=login`` is satisfied by then."""
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "prompt"]
    return f"{request.path}?{urlencode(query)}"


def _error_page(error: OAuth2Error):
    message = {
        "invalid_client": _("应用未登记,无法登录。请联系网络信息化中心。"),
        "invalid_request": _("登录请求无效(回调地址不符或参数错误),请从应用重新进入。"),
    }.get(error.error, _("登录请求无效,请从应用重新进入。"))
    return render_template("error.html", message=message, detail=error.description), 400


@api.post("/oauth/token")
def token():
    return _no_store(server.create_token_response())


@api.post("/oauth/introspect")
def introspect():
    return _no_store(server.create_endpoint_response("introspection"))


@api.post("/oauth/revoke")
def revoke():
    return _no_store(server.create_endpoint_response("revocation"))


@api.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo():
    header = request.headers.get("Authorization", "")
    scheme, _space, value = header.partition(" ")
    row = tokens.lookup(value.strip()) if scheme.lower() == "bearer" else None
    if row is None or not tokens.is_active(row):
        response = jsonify(error="invalid_token")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return _no_store(response)
    return _no_store(jsonify(dict(user_info(row.user, row.scope))))


@bp.route("/oauth/logout", methods=["GET", "POST"])
@guard.public
def logout():
    """RP-initiated logout: ends the portal session and its tokens; redirects only to a registered URI."""
    values = request.values
    claims = _hint_claims(values.get("id_token_hint", ""))
    client = clients.find(values.get("client_id") or (claims or {}).get("aud_client"))
    target = values.get("post_logout_redirect_uri", "")
    if not (client and target in clients.post_logout_redirect_uris(client)):
        target = ""
    elif values.get("state"):
        target += ("&" if "?" in target else "?") + urlencode({"state": values["state"]})
    session = g.login
    hint_matches = claims is not None and session is not None and claims.get("sub") == tokens.subject(g.user)
    if session is not None and not hint_matches and request.method == "GET":
        return render_template("oidc/logout.html", client=client, values=values)  # ask: 确认退出?
    if session is not None:  # its tokens end with it
        login.logout(session, g.client)
        guard.set_session_cookie(None)
        g.login = g.user = None  # the page below is already a logged-out one
    if target:
        return redirect_to(target)
    return render_template("oidc/logged_out.html")


def _hint_claims(hint: str) -> dict | None:
    """The claims of an id_token this provider signed (expired ones too: a hint, not a credential)."""
    if not hint or len(hint) > 8192:
        return None
    try:
        claims = jwt.decode(hint, keys.verifying_keys(), algorithms=[keys.ALGORITHM]).claims
    except (JoseError, ValueError):
        return None
    if claims.get("iss") != issuer():
        return None
    audience = claims.get("aud")
    claims["aud_client"] = audience[0] if isinstance(audience, list) and audience else audience
    return claims
