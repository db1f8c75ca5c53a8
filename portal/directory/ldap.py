"""LDAP directory (OpenLDAP, Active Directory, 389 DS, FreeIPA) through ldap3: search, then bind.

A read-only service account searches ``PORTAL_LDAP_BASE_DN`` with ``PORTAL_LDAP_USER_FILTER``, the
login escaped as RFC 4515 says (``*``, ``(``, ``)``, ``\\``, NUL); exactly one entry must match (two
are a configuration error, never a login). The password is then checked by a bind as that entry,
on a connection kept for binds only, so the searching connection keeps its identity. Empty
passwords never reach a bind (an anonymous bind "succeeds").

Transport: ``ldaps://`` or StartTLS, the certificate and host name always verified (plaintext only
with the development switch). Every connection attempt and every operation waits at most
``PORTAL_LDAP_TIMEOUT`` seconds; the URLs are tried in order and a dead one is skipped for
``DEAD_SECONDS``. Connections live per process and are reused, so a login costs one bind, not a
new TCP and TLS handshake for the search.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import queue
import ssl
import threading
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask_babel import gettext as _
from ldap3 import (
    DEREF_NEVER,
    FIRST,
    NONE,
    SAFE_SYNC,
    SUBTREE,
    SYNC,
    Connection,
    Server,
    ServerPool,
    Tls,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.config import set_config_parameter
from ldap3.utils.conv import escape_filter_chars

from portal.config import ConfigError
from portal.directory import WRONG, DirectoryDown, Principal
from portal.services.errors import InvalidCredentials, InvalidInput

log = logging.getLogger(__name__)
DEAD_SECONDS = 30  # a server that did not answer is skipped this long
INVALID_CREDENTIALS = 49  # LDAP resultCode (AD adds a sub-code in the message: 52e, 533, 701, 775, …)
BINDERS_KEPT = 8  # bind connections kept per process
# ldap3 sleeps this long after every round through the server pool, also after the last one: a dead
# directory would hold each login 10 s beyond the connect timeouts.
set_config_parameter("POOLING_LOOP_TIMEOUT", 0)


@dataclass(frozen=True)
class LdapSettings:
    urls: tuple[str, ...]
    start_tls: bool
    ca_file: str
    bind_dn: str
    bind_password: str
    base_dn: str
    user_filter: str
    attr_account: str
    attr_name: str
    timeout: int
    password_change: bool


def settings_of(config) -> LdapSettings:
    """PORTAL_LDAP_* as settings; refuses what would send passwords unprotected or cannot work."""
    urls = tuple(u.strip() for u in str(config["LDAP_URLS"]).split(",") if u.strip())
    start_tls = _on_off(config, "LDAP_START_TLS")
    plaintext_ok = bool(config["LDAP_ALLOW_PLAINTEXT"]) and config["ENV"] in ("development", "testing")
    if not urls:
        raise ConfigError("PORTAL_LDAP_URLS is required with PORTAL_PASSWORD_BACKEND=ldap")
    for url in urls:
        scheme = urlsplit(url).scheme
        if scheme not in ("ldap", "ldaps") or not urlsplit(url).hostname:
            raise ConfigError(f"PORTAL_LDAP_URLS: expected ldaps://HOST[:636] or ldap://HOST[:389], got {url!r}")
        if scheme == "ldap" and not start_tls and not plaintext_ok:
            raise ConfigError(
                f"PORTAL_LDAP_URLS: {url} without PORTAL_LDAP_START_TLS=on would send passwords in clear"
                " (PORTAL_LDAP_ALLOW_PLAINTEXT is for development only)"
            )
    base_dn, user_filter = str(config["LDAP_BASE_DN"]), str(config["LDAP_USER_FILTER"])
    if not base_dn:
        raise ConfigError("PORTAL_LDAP_BASE_DN is required with PORTAL_PASSWORD_BACKEND=ldap")
    if "{login}" not in user_filter or not (user_filter.startswith("(") and user_filter.endswith(")")):
        raise ConfigError("PORTAL_LDAP_USER_FILTER must be a filter in parentheses containing {login}")
    ca_file = str(config["LDAP_CA_FILE"])
    if ca_file and not os.path.isfile(ca_file):
        raise ConfigError(f"PORTAL_LDAP_CA_FILE: no such file {ca_file!r}")
    return LdapSettings(
        urls=urls,
        start_tls=start_tls,
        ca_file=ca_file,
        bind_dn=str(config["LDAP_BIND_DN"]),
        bind_password=str(config["LDAP_BIND_PASSWORD"]),
        base_dn=base_dn,
        user_filter=user_filter,
        attr_account=str(config["LDAP_ATTR_ACCOUNT"]),
        attr_name=str(config["LDAP_ATTR_NAME"]),
        timeout=int(config["LDAP_TIMEOUT"]),
        password_change=_on_off(config, "LDAP_PASSWORD_CHANGE"),
    )


def _on_off(config, key: str) -> bool:
    value = str(config[key]).strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"PORTAL_{key} must be on or off, got {value!r}")
    return value == "on"


@dataclass(frozen=True)
class Entry:
    dn: str
    attributes: dict


class LdapDirectory:
    """One directory for one app; its connections are opened lazily, in each process."""

    name = "ldap"

    def __init__(self, settings: LdapSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._pid = 0
        self._pool: ServerPool | None = None
        self._searcher: Connection | None = None
        self._binders: queue.SimpleQueue[Connection] = queue.SimpleQueue()

    @classmethod
    def from_config(cls, config) -> LdapDirectory:
        return cls(settings_of(config))

    @property
    def changes_passwords(self) -> bool:
        return self.settings.password_change

    # -- the backend interface ------------------------------------------------------------------

    def check(self, login: str, password: str) -> Principal:
        if not password or not _plausible(login):  # an empty password would be an anonymous bind
            raise InvalidCredentials(WRONG)
        entry = self._entry(login)
        if entry is None or not self._bind(entry.dn, password):
            raise InvalidCredentials(WRONG)
        return self._principal(entry)

    def find(self, login: str) -> Principal | None:
        entry = self._entry(login) if _plausible(login) else None
        return self._principal(entry) if entry else None

    def change_password(self, login: str, old: str, new: str) -> None:
        """RFC 3062 password modify, as the user (the directory applies its own policy too)."""
        entry = self._entry(login) if old and _plausible(login) else None
        if entry is None:
            raise InvalidCredentials(_("当前密码错误"))
        connection = self._connection(entry.dn, old, SYNC)
        try:
            if not self._open(connection, bind=True):
                raise InvalidCredentials(_("当前密码错误"))
            connection.extend.standard.modify_password(user=entry.dn, old_password=old, new_password=new)
            if connection.result["result"] != 0:
                message = connection.result.get("message") or connection.result.get("description")
                raise InvalidInput(_("目录拒绝了新密码:%(message)s", message=message))
        except LDAPException as exc:
            raise DirectoryDown(f"password modify: {exc!r}") from exc
        finally:
            _close(connection)

    # -- searching ------------------------------------------------------------------------------

    def _entry(self, login: str) -> Entry | None:
        """The one entry the filter finds for ``login``; None if none; more than one is refused."""
        query = self.settings.user_filter.replace("{login}", escape_filter_chars(login))
        attributes = sorted({self.settings.attr_account, self.settings.attr_name, "mail", "entryUUID"})
        for retry in (False, True):  # a connection the server dropped is opened again, once
            searcher = self._searching_connection(renew=retry)
            try:
                answer = searcher.search(
                    self.settings.base_dn,
                    query,
                    search_scope=SUBTREE,
                    dereference_aliases=DEREF_NEVER,
                    attributes=attributes,
                    size_limit=2,
                    time_limit=self.settings.timeout,
                )
                status, result = _outcome(searcher, answer)
                response = answer[2] if isinstance(answer, tuple) else searcher.response
            except LDAPException as exc:
                if retry:
                    raise DirectoryDown(f"search: {exc!r}") from exc
                continue
            entries = [Entry(r["dn"], r["attributes"]) for r in response or [] if r.get("type") == "searchResEntry"]
            if len(entries) > 1:
                log.error("PORTAL_LDAP_USER_FILTER matches more than one entry for %r: %s", login, entries[0].dn)
                raise DirectoryDown("the user filter matches more than one entry: fix PORTAL_LDAP_USER_FILTER")
            if not status and result.get("result") not in (0, 4, 32):  # ok, sizeLimitExceeded, noSuchObject
                raise DirectoryDown(f"search failed: {result.get('description')} {result.get('message')}")
            return entries[0] if entries else None
        return None

    def _principal(self, entry: Entry) -> Principal:
        account = _first(entry.attributes.get(self.settings.attr_account)).strip().lower()
        if not account:
            raise DirectoryDown(f"{entry.dn} has no {self.settings.attr_account}: set PORTAL_LDAP_ATTR_ACCOUNT")
        return Principal(
            account=account,
            name=_first(entry.attributes.get(self.settings.attr_name)).strip(),
            mail=_first(entry.attributes.get("mail")).strip().lower(),
            directory_id=_first(entry.attributes.get("entryUUID")),
        )

    # -- connections ----------------------------------------------------------------------------

    def _servers(self) -> ServerPool:
        """The server pool of this process (after a fork the parent's sockets are not ours)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.settings.ca_file or None)
                    servers = [_server(url, tls, self.settings.timeout) for url in self.settings.urls]
                    # With one server there is nothing to skip to: it is asked again at once.
                    skip = DEAD_SECONDS if len(servers) > 1 else False
                    self._pool = ServerPool(servers, FIRST, active=1, exhaust=skip)
                    self._searcher, self._binders = None, queue.SimpleQueue()
                    self._pid = os.getpid()
        return self._pool

    def _connection(self, user: str, password: str, strategy) -> Connection:
        return Connection(
            self._servers(),
            user=user or None,
            password=password or None,
            client_strategy=strategy,
            receive_timeout=self.settings.timeout,
            auto_referrals=False,
            raise_exceptions=False,
            read_only=strategy == SAFE_SYNC,
        )

    def _open(self, connection: Connection, bind: bool) -> bool:
        """Connect (TLS verified, StartTLS first where asked) and bind; False if the bind was refused."""
        connection.open()
        if self.settings.start_tls and not connection.server.ssl:
            ok, result = _outcome(connection, connection.start_tls())
            if not ok:
                raise DirectoryDown(f"StartTLS refused by {connection.server.host}: {result.get('description')}")
        _check_host(connection)
        if not bind:
            return True
        ok, result = _outcome(connection, connection.bind())
        if ok or result.get("result") == INVALID_CREDENTIALS:
            return ok
        raise DirectoryDown(f"bind failed: {result.get('description')} {result.get('message')}")

    def _searching_connection(self, renew: bool = False) -> Connection:
        """The service account's connection of this process (thread-safe), opened on first use."""
        self._servers()
        with self._lock:
            if renew or self._searcher is None or self._searcher.closed:
                _close(self._searcher)
                connection = self._connection(self.settings.bind_dn, self.settings.bind_password, SAFE_SYNC)
                try:
                    if not self._open(connection, bind=bool(self.settings.bind_dn)):
                        raise DirectoryDown(
                            "the service account was refused: check PORTAL_LDAP_BIND_DN and its password"
                        )
                except LDAPException as exc:
                    _close(connection)
                    raise DirectoryDown(f"connect: {exc!r}") from exc
                self._searcher = connection
            return self._searcher

    def _bind(self, dn: str, password: str) -> bool:
        """Whether ``password`` is the entry's, on a kept bind connection (one bind per check)."""
        for retry in (False, True):
            connection = self._binder(fresh=retry)
            try:
                ok = connection.rebind(user=dn, password=password)
            except LDAPException as exc:
                _close(connection)
                if retry:
                    raise DirectoryDown(f"bind: {exc!r}") from exc
                continue
            code = connection.result.get("result")
            if not ok and code != INVALID_CREDENTIALS:
                _close(connection)
                raise DirectoryDown(f"bind failed: {connection.result.get('description')}")
            if self._binders.qsize() < BINDERS_KEPT:
                self._binders.put(connection)
            else:
                _close(connection)
            return ok
        return False

    def _binder(self, fresh: bool) -> Connection:
        self._servers()
        if not fresh:
            try:
                connection = self._binders.get_nowait()
                if not connection.closed:
                    return connection
            except queue.Empty:
                pass
        connection = self._connection("", "", SYNC)
        try:
            self._open(connection, bind=False)
        except LDAPException as exc:
            _close(connection)
            raise DirectoryDown(f"connect: {exc!r}") from exc
        return connection


def _server(url: str, tls: Tls, timeout: int) -> Server:
    parts = urlsplit(url)
    secure = parts.scheme == "ldaps"
    return Server(
        parts.hostname,
        port=parts.port or (636 if secure else 389),
        use_ssl=secure,
        tls=tls,
        get_info=NONE,
        connect_timeout=timeout,
    )


def _check_host(connection: Connection) -> None:
    """The server's certificate names the host we asked for (ldap3 checks it only for some handshakes)."""
    sock = connection.socket
    if not isinstance(sock, ssl.SSLSocket):
        return
    certificate = sock.getpeercert()
    host = connection.server.host
    names = [value for kind, value in certificate.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    if not any(_matches(host, name) for name in names):
        _close(connection)
        raise DirectoryDown(f"certificate of {host} is for {', '.join(names) or 'no name'}")


def _matches(host: str, name: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(name)
    except ValueError:
        pass
    host, name = host.lower().rstrip("."), name.lower().rstrip(".")
    if name.startswith("*."):
        return host.count(".") == name.count(".") and host.endswith(name[1:])
    return host == name


def _outcome(connection: Connection, answer) -> tuple[bool, dict]:
    """(ok, result) of an operation: thread-safe strategies answer a tuple, the others a bool."""
    if isinstance(answer, tuple):
        return bool(answer[0]), answer[1] or {}
    return bool(answer), connection.result or {}


def _plausible(login: str) -> bool:
    return 0 < len(login) <= 254 and login.isprintable()


def _first(value) -> str:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def _close(connection: Connection | None) -> None:
    if connection is not None:
        with suppress(Exception):  # closing a broken connection; nothing to report
            connection.unbind()
