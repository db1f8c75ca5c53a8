"""Helpers for the OpenID Connect provider's tests: relying parties, the code flow, tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt

from portal.oidc import clients, keys
from tests.helpers import Browser

RP_CALLBACK = "https://webmail.mail.xamd.edu.cn/index.php/login/oauth"
APP_CALLBACK = "http://localhost:5173/callback"


class RelyingParty:
    """A registered client and what it does over the back channel (its own test client, no cookies)."""

    def __init__(self, app, name: str, redirect_uri: str | None, public: bool = False, resource_server: bool = False):
        uris = [redirect_uri] if redirect_uri else []
        self.row, self.secret = clients.add(name, uris, [redirect_uri] if redirect_uri else [], public, resource_server)
        self.client_id, self.redirect_uri = self.row.client_id, redirect_uri
        self.http = app.test_client()
        self.verifier = secrets.token_urlsafe(48)

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorize_url(self, pkce: bool = True, **extra) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile email",
            "state": "st-" + secrets.token_hex(4),
        }
        if pkce:
            params.update(code_challenge=self.challenge, code_challenge_method="S256")
        params.update(extra)
        return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})

    def basic(self) -> dict:
        raw = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    def token(self, code: str, pkce: bool = True, post: bool = False, **extra):
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        if pkce:
            form["code_verifier"] = self.verifier
        headers = {}
        if self.secret is None:
            form["client_id"] = self.client_id
        elif post:
            form.update(client_id=self.client_id, client_secret=self.secret)
        else:
            headers = self.basic()
        form.update(extra)
        return self.http.post("/oauth/token", data=form, headers=headers)

    def refresh(self, refresh_token: str):
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self.http.post("/oauth/token", data=form, headers=self.basic())

    def introspect(self, token: str, **form):
        return self.http.post("/oauth/introspect", data={"token": token, **form}, headers=self.basic()).get_json()


def code_from(response, rp: RelyingParty) -> str:
    """The code in the redirect back to the client (asserting it goes exactly to its callback)."""
    target = response.headers.get("Location", "")
    assert target.split("?")[0] == rp.redirect_uri, (response.status_code, target)
    query = parse_qs(urlsplit(target).query)
    assert "code" in query, query
    return query["code"][0]


def error_from(response) -> dict[str, str]:
    target = response.headers.get("Location", "")
    return {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}


def authorize(browser: Browser, rp: RelyingParty, **extra) -> str:
    """The code an authorization gives a fully logged-in browser."""
    return code_from(browser.get(rp.authorize_url(**extra)), rp)


def id_token_claims(token: str) -> dict:
    """The id_token's claims, its signature checked against the published JWKS."""
    return jwt.decode(token, keys.verifying_keys(), algorithms=[keys.ALGORITHM]).claims
