"""The test's own OAuth 2.0 client: the authorization code flow exactly as Roundcube 1.6 does it
(no PKCE, no nonce, client_secret_post), with a browser's portal cookies, to get hold of a token."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

TIMEOUT = 10.0


def request(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
    """One HTTP request, redirects not followed: (status, headers, body text)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), data, headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


class CodeFlow:
    def __init__(self, portal_url: str, client_id: str, client_secret: str, redirect_uri: str):
        self.portal_url = portal_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri

    def run(self, cookies: list[dict]) -> dict:
        """Authorize in the browser's portal session, then redeem the code: the token response."""
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
        state = secrets.token_urlsafe(12)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "scope": "openid profile email",
                "redirect_uri": self.redirect_uri,
                "state": state,
            }
        )
        status, headers, body = request(f"{self.portal_url}/oauth/authorize?{query}", headers={"Cookie": cookie})
        assert status in (302, 303), f"authorize answered {status}: {body[:500]}"
        location = headers["Location"]
        assert location.startswith(self.redirect_uri + "?"), location
        answer = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        assert answer.get("state") == state and answer.get("code"), answer
        status, _headers, body = request(
            f"{self.portal_url}/oauth/token",
            "POST",
            {
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": self.redirect_uri,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        assert status == 200, f"token endpoint answered {status}: {body[:500]}"
        return json.loads(body)

    @staticmethod
    def id_token_claims(tokens: dict) -> dict:
        """The id_token's payload, unverified (what Roundcube 1.6 reads)."""
        payload = tokens["id_token"].split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
