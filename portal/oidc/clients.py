"""Relying parties: registered by the operator (``flask --app wsgi oidc client …``), never by themselves.

Redirect URIs are compared exactly (no prefix, case folding or normalisation). A confidential
client gets a 256-bit secret shown once; only its HMAC is stored, so checking it costs no more than
a hash (Dovecot authenticates on every webmail IMAP login).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from portal import crypto
from portal.models import OAuthClient
from portal.services.errors import DomainError

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}  # where plain http is tolerated (development, tests)


class ClientError(DomainError):
    status = 400


def _check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClientError(f"redirect URI must be an absolute http(s) URL: {uri!r}")
    if parts.fragment or "#" in uri or "@" in parts.netloc:
        raise ClientError(f"redirect URI must have no fragment and no user info: {uri!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ClientError(f"redirect URI must use https (http only for localhost): {uri!r}")
    return uri


def add(
    name: str,
    redirect_uris: list[str] = (),
    post_logout_redirect_uris: list[str] = (),
    public: bool = False,
    resource_server: bool = False,
) -> tuple[OAuthClient, str | None]:
    """Register a client; returns it and its secret (None for a public client), shown only now."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ClientError("client name: 1 to 100 characters")
    if public and resource_server:
        raise ClientError("a resource server authenticates with a secret: it cannot be public")
    if not redirect_uris and not resource_server:
        raise ClientError("a client that logs users in needs at least one --redirect-uri")
    uris = [_check_redirect_uri(uri) for uri in redirect_uris]
    logout_uris = [_check_redirect_uri(uri) for uri in post_logout_redirect_uris]
    secret = None if public else crypto.new_token(32)
    client = OAuthClient.create(
        client_id=secrets.token_hex(16),  # hex: never read as a CLI option (a leading '-'), safe in any config file
        name=name,
        secret_hash=crypto.token_hash(secret) if secret else "",
        redirect_uris="\n".join(uris),
        post_logout_redirect_uris="\n".join(logout_uris),
        public=public,
        resource_server=resource_server,
    )
    return client, secret


def listing() -> list[OAuthClient]:
    return list(OAuthClient.select().order_by(OAuthClient.created_at, OAuthClient.id))


def remove(client_id: str) -> bool:
    """Delete a client with all its codes and tokens."""
    return bool(OAuthClient.delete().where(OAuthClient.client_id == client_id).execute())


def find(client_id: str | None) -> OAuthClient | None:
    if not client_id or len(client_id) > 64:
        return None
    return OAuthClient.get_or_none(OAuthClient.client_id == client_id)


def redirect_uris(client: OAuthClient) -> list[str]:
    return [uri for uri in client.redirect_uris.split("\n") if uri]


def post_logout_redirect_uris(client: OAuthClient) -> list[str]:
    return [uri for uri in client.post_logout_redirect_uris.split("\n") if uri]


def secret_matches(client: OAuthClient, secret: str) -> bool:
    if client.public or not client.secret_hash or not secret:
        return False
    return hmac.compare_digest(client.secret_hash, crypto.token_hash(secret))


def asking(target: str | None) -> OAuthClient | None:
    """The client whose authorization request ``target`` (a remembered /oauth/authorize URL) is."""
    if not target or not target.startswith("/oauth/authorize?"):
        return None
    return find(parse_qs(urlsplit(target).query).get("client_id", [""])[0])
