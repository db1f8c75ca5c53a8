"""Authlib's authorization server, wired to the portal's clients, sessions, codes and tokens.

Authlib does the protocol (request validation, client authentication, PKCE, id_token); this module
answers its questions from the database. Codes and refresh tokens are claimed by conditional
UPDATEs (``tokens.claim_code`` / ``claim_refresh``), so concurrent redemptions have one winner.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidRequestError, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, current_app, g

from portal import crypto
from portal.models import LoginSession, OAuthClient, OAuthCode, OAuthToken, User, utcnow
from portal.oidc import clients, keys, tokens
from portal.services import audit

SCOPES = ["openid", "profile", "email"]
CONFIDENTIAL_AUTH = ["client_secret_basic", "client_secret_post"]


def issuer() -> str:
    """``iss``: PORTAL_PUBLIC_URL exactly, whatever Host a request arrives with."""
    return str(current_app.config["PUBLIC_URL"]).rstrip("/")


def access_token_seconds() -> int:
    return int(current_app.config["OIDC_ACCESS_TOKEN_SECONDS"])


class Client:
    """An ``OAuthClient`` row as Authlib's ClientMixin."""

    def __init__(self, row: OAuthClient):
        self.row = row
        self.client_id = row.client_id

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is always required and matched exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        asked = (scope or "").split()
        return " ".join(s for s in SCOPES if s in asked)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in clients.redirect_uris(self.row)

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.secret_matches(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Public clients use "none" (token, revocation); only confidential ones may introspect."""
        if endpoint in ("token", "revocation"):
            return method == "none" if self.row.public else method in CONFIDENTIAL_AUTH
        return method in CONFIDENTIAL_AUTH and not self.row.public

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(clients.redirect_uris(self.row))

    def check_grant_type(self, grant_type: str) -> bool:
        if not clients.redirect_uris(self.row):
            return False  # a resource server only introspects
        return grant_type == "authorization_code" or (grant_type == "refresh_token" and not self.row.public)


class Code:
    """An ``OAuthCode`` row as Authlib's AuthorizationCodeMixin (with the OIDC and PKCE fields)."""

    def __init__(self, row: OAuthCode):
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method or None

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce or None

    def get_auth_time(self) -> int:
        return _epoch(self.row.auth_time)

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return self.row.amr.split()


class Token:
    """An ``OAuthToken`` row as Authlib's TokenMixin; ``kind`` is which of its two secrets was presented."""

    def __init__(self, row: OAuthToken, kind: str):
        self.row, self.kind = row, kind

    def check_client(self, client: Client) -> bool:
        return self.row.client_id == client.row.id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.row.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        ends = self.row.expires_at if self.kind == "access" else self.row.refresh_expires_at
        return ends is None or utcnow() >= ends

    def is_revoked(self) -> bool:
        return not tokens.is_active(self.row, self.kind)

    def get_user(self) -> User:
        return self.row.user

    def get_client(self) -> Client:
        return Client(self.row.client)


def _epoch(moment: datetime) -> int:
    """Seconds since 1970 of a naive UTC datetime (what JWT and RFC 7662 want)."""
    return int(moment.replace(tzinfo=UTC).timestamp())


def _query_client(client_id: str) -> Client | None:
    row = clients.find(client_id)
    return Client(row) if row else None


def _save_token(token: dict, request) -> None:
    """Store a new access (and refresh) token; it lives on the browser session that authorized it."""
    now = utcnow()
    if request.authorization_code is not None:  # authorization_code grant
        code = request.authorization_code.row
        origin = {"session": code.session_id, "code": code.id, "amr": code.amr, "auth_time": code.auth_time}
        family = secrets.token_hex(16)
    else:  # refresh_token grant: the new pair inherits the old one's session and family
        old = request.refresh_token.row
        origin = {"session": old.session_id, "code": old.code_id, "amr": old.amr, "auth_time": old.auth_time}
        family = old.family
    refresh = token.get("refresh_token")
    OAuthToken.create(
        access_hash=crypto.token_hash(token["access_token"]),
        refresh_hash=crypto.token_hash(refresh) if refresh else None,
        family=family,
        client=request.client.row,
        user=request.user,
        scope=token.get("scope", ""),
        expires_at=now + timedelta(seconds=int(token["expires_in"])),
        # a refresh token lives no longer than the browser session it came from
        refresh_expires_at=LoginSession.get_by_id(origin["session"]).expires_at if refresh else None,
        **origin,
    )


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*CONFIDENTIAL_AUTH, "none"]
    AUTHORIZATION_CODE_LENGTH = 43

    def save_authorization_code(self, code: str, request) -> None:
        session = g.login  # the view completes an authorization only for a session that passed both steps
        data = request.payload.data
        OAuthCode.create(
            code_hash=crypto.token_hash(code),
            client=request.client.row,
            user=request.user,
            session=session,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            nonce=data.get("nonce", "")[:255],
            code_challenge=data.get("code_challenge", ""),
            code_challenge_method=data.get("code_challenge_method", ""),
            auth_time=tokens.auth_time(session),
            amr=" ".join(tokens.amr_of(session)),
            expires_at=utcnow() + timedelta(seconds=int(current_app.config["OIDC_CODE_SECONDS"])),
        )
        # 登录记录 lists single sign-on logins (the code above is pruned within a day)
        audit.record("sso_authorized", user=request.user, client=g.client, detail=request.client.row.name)

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        row = tokens.claim_code(code, client.row)
        return Code(row) if row else None

    def delete_authorization_code(self, authorization_code: Code) -> None:
        """Nothing to do: the code was marked used when it was claimed (kept to detect a replay)."""

    def authenticate_user(self, authorization_code: Code) -> User | None:
        row = authorization_code.row
        if not tokens.session_holds(row.session, row.user):
            return None  # logged out, disabled or locked since the authorization
        return row.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        row = tokens.lookup(refresh_token, "refresh")
        if row is None:
            return None
        if row.revoked_at is not None:  # a rotated (or revoked) refresh token again: end its family
            tokens.revoke_family(row.family)
            return None
        if not tokens.is_active(row, "refresh") or not tokens.claim_refresh(row):
            return None
        return Token(row, "refresh")

    def authenticate_user(self, refresh_token: Token) -> User:
        return refresh_token.row.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Already revoked when it was claimed."""


class PortalOpenIDCode(OpenIDCode):
    def exists_nonce(self, nonce: str, request) -> bool:
        client = clients.find(request.payload.client_id)
        return OAuthCode.select().where((OAuthCode.client == client) & (OAuthCode.nonce == nonce)).exists()

    def resolve_client_private_key(self, client: Client):
        return keys.signing_key()

    def get_client_algorithm(self, client: Client) -> str:
        return keys.ALGORITHM

    def get_encode_header(self, client: Client) -> dict:
        return {"alg": keys.ALGORITHM, "kid": keys.signing_key().kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict:
        return {"iss": issuer(), "aud": [client.get_client_id()], "exp": _now_epoch() + access_token_seconds()}

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_info(user, scope)


def _now_epoch() -> int:
    return _epoch(utcnow())


def user_info(user: User, scope: str) -> UserInfo:
    """The claims about a user a scope allows: ``sub`` always, ``email`` (the account), ``name``."""
    info = UserInfo(sub=tokens.subject(user))
    scopes = scope.split()
    if "email" in scopes:
        info["email"] = user.account
        info["email_verified"] = True
    if "profile" in scopes:
        info["name"] = user.name or user.account
    return info


class S256Only(CodeChallenge):
    """PKCE: S256 only (``plain`` refused, a missing method is not read as plain); public clients must use it."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if grant.request.client.row.public and not data.get("code_challenge"):
            raise InvalidRequestError("PKCE (code_challenge, S256) is required for this client")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        return super().validate_code_challenge(grant, redirect_uri)


class PublicNonce(PortalOpenIDCode):
    """A nonce is required from public clients (Roundcube 1.6, a confidential client, sends none)."""

    def validate_openid_authorization_request(self, grant, redirect_uri):
        self.require_nonce = bool(grant.request.client.row.public)
        return super().validate_openid_authorization_request(grant, redirect_uri)


class Introspection(IntrospectionEndpoint):
    """RFC 7662 for the token's own client and for resource servers (Dovecot); Basic is tried first."""

    CLIENT_AUTH_METHODS = CONFIDENTIAL_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        for kind in ("refresh", "access") if token_type_hint == "refresh_token" else ("access", "refresh"):
            row = tokens.lookup(token_string, kind)
            if row is not None:
                return Token(row, kind)
        return None

    def check_permission(self, token: Token, client: Client, request) -> bool:
        return client.row.resource_server or token.check_client(client)

    def introspect_token(self, token: Token) -> dict:
        row = token.row
        ends = row.expires_at if token.kind == "access" else row.refresh_expires_at
        return {
            "active": True,
            "client_id": row.client.client_id,
            "token_type": "Bearer" if token.kind == "access" else "refresh_token",
            "username": row.user.account,
            "email": row.user.account,
            "scope": row.scope,
            "sub": tokens.subject(row.user),
            "aud": row.client.client_id,
            "iss": issuer(),
            "exp": _epoch(ends),
            "iat": _epoch(row.created_at),
            "auth_time": _epoch(row.auth_time),
        }


class Revocation(RevocationEndpoint):
    """RFC 7009: a client ends its own tokens (revoking a refresh token ends its family)."""

    CLIENT_AUTH_METHODS = [*CONFIDENTIAL_AUTH, "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return Introspection.query_token(self, token_string, token_type_hint)

    def revoke_token(self, token: Token, request) -> None:
        if token.kind == "refresh":
            tokens.revoke_family(token.row.family)
        else:
            OAuthToken.update(revoked_at=utcnow()).where(OAuthToken.id == token.row.id).execute()


server = AuthorizationServer()


def init_app(app: Flask) -> None:
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", SCOPES)
    server.init_app(app, query_client=_query_client, save_token=_save_token)
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda **_: crypto.new_token(32),
            refresh_token_generator=lambda **_: crypto.new_token(32),
            expires_generator=lambda client, grant_type: access_token_seconds(),
        ),
    )
    server.register_grant(AuthorizationCodeGrant, [PublicNonce(), S256Only(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
