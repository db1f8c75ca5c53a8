"""Passwords checked by logging in to the mail store's own IMAP service (mail-only deployments).

``PORTAL_IMAP_PASSWORD_URL``: ``imaps://HOST[:993]`` or ``imap+starttls://HOST[:143]``, the
certificate and host name verified (``PORTAL_IMAP_CA_FILE``); plain ``imap://`` only on loopback.
It must be the mail store itself, never the nginx proxy in front of it: the proxy asks the portal,
and refuses main passwords once a second factor is bound. The login is the full mail address; an
IMAP server cannot be searched, so a user deleted there is noticed at the next password check.
"""

from __future__ import annotations

import imaplib
import ipaddress
import os
import socket
import ssl
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

from portal.config import ConfigError
from portal.directory import WRONG, DirectoryDown, Principal
from portal.models import User
from portal.services import accounts
from portal.services.errors import InvalidCredentials

TIMEOUT = 5  # seconds to connect and for each reply
PORTS = {"imaps": 993, "imap+starttls": 143, "imap": 143}


@dataclass(frozen=True)
class ImapDirectory:
    name = "imap"
    changes_passwords = False  # IMAP has no way to set a password
    scheme: str
    host: str
    port: int
    ca_file: str

    @classmethod
    def from_config(cls, config) -> ImapDirectory:
        url = str(config["IMAP_PASSWORD_URL"])
        parts = urlsplit(url)
        if parts.scheme not in PORTS or not parts.hostname:
            raise ConfigError(f"PORTAL_IMAP_PASSWORD_URL: expected imaps://HOST or imap+starttls://HOST, got {url!r}")
        if parts.scheme == "imap" and not _loopback(parts.hostname):
            raise ConfigError(
                "PORTAL_IMAP_PASSWORD_URL: plain imap:// only to this host; use imaps:// or imap+starttls://"
            )
        ca_file = str(config["IMAP_CA_FILE"])
        if ca_file and not os.path.isfile(ca_file):
            raise ConfigError(f"PORTAL_IMAP_CA_FILE: no such file {ca_file!r}")
        return cls(parts.scheme, parts.hostname, parts.port or PORTS[parts.scheme], ca_file)

    def check(self, login: str, password: str) -> Principal:
        account = accounts.normalize(login)
        if not password or not accounts.ACCOUNT_RE.match(account) or "\0" in password:
            raise InvalidCredentials(WRONG)
        client = self._connect()
        try:
            plain = f"\0{account}\0{password}".encode()
            client.authenticate("PLAIN", lambda _challenge: plain)
        except imaplib.IMAP4.error as exc:  # NO [AUTHENTICATIONFAILED] and the like: a refused login
            if "UNAVAILABLE" in str(exc).upper():
                raise DirectoryDown(f"IMAP {self.host}: {exc}") from exc
            raise InvalidCredentials(WRONG) from exc
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise DirectoryDown(f"IMAP {self.host}: {exc!r}") from exc
        finally:
            _logout(client)
        return Principal(account=account, mail=account)

    def find(self, login: str) -> Principal | None:
        """An IMAP server cannot be searched: the account row is all there is."""
        user = User.by_account(accounts.normalize(login))
        return Principal(account=user.account, name=user.name, mail=user.account) if user else None

    def _connect(self) -> imaplib.IMAP4:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        try:
            if self.scheme == "imaps":
                return imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=TIMEOUT)
            client = imaplib.IMAP4(self.host, self.port, timeout=TIMEOUT)
            if self.scheme == "imap+starttls":
                client.starttls(ssl_context=context)
            return client
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            raise DirectoryDown(f"IMAP {self.host}:{self.port}: {exc!r}") from exc


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or _resolves_to_loopback(host)


def _resolves_to_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except OSError:
        return False


def _logout(client: imaplib.IMAP4) -> None:
    with suppress(Exception):  # the check is done; a failing goodbye changes nothing
        client.logout()
