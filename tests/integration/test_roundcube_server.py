"""Debian's Roundcube 1.6 with deploy/roundcube/'s files: what it asks of the portal before any login."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import free_port
from tests.integration.conftest import print_logs_if_failed
from tests.integration.procs import HOST
from tests.integration.roundcube import Roundcube, start_roundcube

pytestmark = pytest.mark.integration

PORTAL = "http://localhost:9"  # never contacted: these tests stop at the redirect


@pytest.fixture
def roundcube(request, tmp_path) -> Iterator[Roundcube]:
    closed = free_port()  # nothing listens there: no IMAP or SMTP is opened before a login
    site = start_roundcube(
        tmp_path / "roundcube",
        free_port(),
        portal_url=PORTAL,
        backchannel_url=PORTAL,
        client_id="roundcube-test-client",
        client_secret="not-used-before-a-login",
        imap_port=closed,
        smtp_port=closed,
    )
    yield site
    site.stop()
    print_logs_if_failed(request, *site.logs())


def get(site: Roundcube, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(HOST, int(urlsplit(site.url).port), timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_visit_goes_straight_to_the_portal(roundcube):
    """oauth_login_redirect: no Roundcube login form, an authorization request as Roundcube 1.6 sends it."""
    response = get(roundcube, "/")
    assert response.status == 302
    location = urlsplit(response.getheader("Location"))
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{PORTAL}/oauth/authorize"
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query.pop("state")
    assert query == {
        "response_type": "code",
        "client_id": "roundcube-test-client",
        "scope": "openid profile email",
        "redirect_uri": roundcube.redirect_uri,  # <base>/index.php/login/oauth with the port: registered as is
    }


def test_only_public_html_and_index_php_are_served(roundcube):
    assert get(roundcube, "/skins/elastic/ui.min.js").status == 200
    for path in ("/.htaccess", "/config/config.inc.php", "/installer/", "/program/include/iniset.php", "/x.php"):
        assert get(roundcube, path).status == 404, path


def test_a_forged_host_header_does_not_change_the_redirect_uri(roundcube):
    connection = http.client.HTTPConnection(HOST, int(urlsplit(roundcube.url).port), timeout=10)
    connection.request("GET", "/", headers={"Host": "evil.example"})
    response = connection.getresponse()
    connection.close()
    query = parse_qs(urlsplit(response.getheader("Location")).query)
    assert query["redirect_uri"] == [roundcube.redirect_uri]
