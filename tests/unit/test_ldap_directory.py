"""The LDAP backend's logic on ldap3's mock strategy: escaping, exactly one entry, no empty binds, error mapping.

The real server (TLS, timeouts, restarts) is in tests/integration/test_directory_ldap.py.
"""

from __future__ import annotations

import pytest
from ldap3 import MOCK_SYNC, OFFLINE_SLAPD_2_4, Server
from ldap3.core.exceptions import LDAPSocketReceiveError

from portal import config as config_module
from portal.config import ConfigError
from portal.directory import DirectoryDown
from portal.directory.ldap import LdapDirectory, settings_of
from portal.services.errors import InvalidCredentials

BASE = "dc=xamd,dc=edu,dc=cn"
SERVICE = f"cn=portal,ou=services,{BASE}"
PEOPLE = {
    "alice": ("alice@mail.xamd.edu.cn", "Alice-pass-1", "爱丽丝", "0f1e2d3c-0000-4000-8000-000000000001"),
    "bob": ("bob@mail.xamd.edu.cn", "Bob-pass-1", "Bob", "0f1e2d3c-0000-4000-8000-000000000002"),
}


def ldap_config(**overrides) -> dict:
    return config_module.load(
        {
            "ENV": "testing",
            "PASSWORD_BACKEND": "ldap",
            "LDAP_URLS": "ldaps://ldap.xamd.edu.cn",
            "LDAP_BIND_DN": SERVICE,
            "LDAP_BIND_PASSWORD": "service-pw",
            "LDAP_BASE_DN": BASE,
            **overrides,
        },
        environ={},
    )


class MockDirectory(LdapDirectory):
    """The backend over ldap3's in-memory server: every connection shares one DIT."""

    def __init__(self, settings):
        super().__init__(settings)
        self.server = Server("mock", get_info=OFFLINE_SLAPD_2_4)
        self.binds: list[str] = []
        self.searches: list[str] = []
        self.fail_search = False

    def _servers(self):
        return self.server

    def _connection(self, user, password, strategy):
        from ldap3 import Connection

        directory = self

        class Recording(Connection):
            def bind(self, *args, **kwargs):  # rebind() binds through here too
                directory.binds.append(self.user or "")
                return super().bind(*args, **kwargs)

            def search(self, base, query, *args, **kwargs):
                directory.searches.append(query)
                if directory.fail_search:
                    raise LDAPSocketReceiveError("error receiving data: timed out")
                return super().search(base, query, *args, **kwargs)

        return Recording(self.server, user=user or None, password=password or None, client_strategy=MOCK_SYNC)

    def _open(self, connection, bind):
        return connection.bind() if bind else True

    def add_entry(self, dn: str, attributes: dict) -> None:
        """An entry in the in-memory DIT (every connection to ``self.server`` sees it)."""
        self._connection("", "", MOCK_SYNC).strategy.add_entry(dn, attributes)

    def add(self, uid: str, mail: str, password: str, name: str, uuid: str) -> None:
        attributes = {"objectClass": ["inetOrgPerson"], "uid": uid, "mail": mail, "cn": name, "sn": name}
        attributes |= {"displayName": name, "userPassword": password, "entryUUID": uuid}
        self.add_entry(f"uid={uid},ou=people,{BASE}", attributes)


@pytest.fixture
def directory() -> MockDirectory:
    found = MockDirectory(settings_of(ldap_config()))
    found.add_entry(SERVICE, {"objectClass": ["person"], "cn": "portal", "sn": "portal", "userPassword": "service-pw"})
    for uid, (mail, password, name, uuid) in PEOPLE.items():
        found.add(uid, mail, password, name, uuid)
    return found


def test_search_then_bind_gives_the_directorys_account_and_name(directory):
    for login in ("alice", "Alice@Mail.XAMD.edu.cn", "ALICE"):
        principal = directory.check(login, "Alice-pass-1")
        assert (principal.account, principal.name) == ("alice@mail.xamd.edu.cn", "爱丽丝")
        assert principal.directory_id == PEOPLE["alice"][3]
    assert directory.binds.count(f"uid=alice,ou=people,{BASE}") == 3  # one bind per check


def test_a_wrong_password_and_an_unknown_user_are_the_same_refusal(directory):
    for login, password in (("alice", "Bob-pass-1"), ("nobody", "Alice-pass-1")):
        with pytest.raises(InvalidCredentials) as refused:
            directory.check(login, password)
        assert refused.value.message == "账号或密码错误"


@pytest.mark.parametrize(
    "login, escaped",
    [
        ("*", "\\2a"),
        ("a*", "a\\2a"),
        ("alice)(uid=*", "alice\\29\\28uid=\\2a"),
        ("*)(|(uid=*", "\\2a\\29\\28|\\28uid=\\2a"),
        ("\\2a", "\\5c2a"),
        ("(uid=alice)", "\\28uid=alice\\29"),
    ],
)
def test_filter_values_are_escaped(directory, login, escaped):
    """RFC 4515: an injected wildcard or parenthesis must not widen the search (it would log in as alice)."""
    with pytest.raises(InvalidCredentials):
        directory.check(login, "Alice-pass-1")
    assert directory.searches[-1] == f"(&(objectClass=inetOrgPerson)(|(mail={escaped})(uid={escaped})))"
    assert not any(dn.startswith("uid=") for dn in directory.binds)  # nobody was bound as


def test_a_nul_or_an_overlong_login_never_reaches_the_directory(directory):
    for login in ("alice\x00", "a" * 300, ""):
        with pytest.raises(InvalidCredentials):
            directory.check(login, "Alice-pass-1")
    assert directory.searches == []


def test_an_empty_password_never_reaches_a_bind(directory):
    with pytest.raises(InvalidCredentials):
        directory.check("alice", "")
    assert directory.binds == [] and directory.searches == []


def test_two_matching_entries_are_a_configuration_error_not_a_login(directory):
    directory.add("alice2", "alice@mail.xamd.edu.cn", "Alice-pass-1", "另一个", "0f1e2d3c-0000-4000-8000-000000000003")
    with pytest.raises(DirectoryDown) as down:
        directory.check("alice@mail.xamd.edu.cn", "Alice-pass-1")
    assert "more than one entry" in down.value.detail and down.value.status == 503
    assert not any(dn.startswith("uid=") for dn in directory.binds)


def test_a_directory_that_does_not_answer_is_unavailable_never_wrong(directory):
    directory.fail_search = True
    with pytest.raises(DirectoryDown) as down:
        directory.check("alice", "Alice-pass-1")
    assert down.value.code == "directory_unavailable" and "timed out" in down.value.detail
    assert len(directory.searches) == 2  # one retry on a fresh connection, then it gives up


def test_find_needs_no_password(directory):
    assert directory.find("bob").account == "bob@mail.xamd.edu.cn"
    assert directory.find("nobody") is None


@pytest.mark.parametrize(
    "overrides, complaint",
    [
        ({"LDAP_URLS": ""}, "PORTAL_LDAP_URLS is required"),
        ({"LDAP_URLS": "ldap://ldap.xamd.edu.cn"}, "would send passwords in clear"),
        ({"LDAP_URLS": "http://ldap.xamd.edu.cn"}, "expected ldaps://"),
        ({"LDAP_BASE_DN": ""}, "PORTAL_LDAP_BASE_DN is required"),
        ({"LDAP_USER_FILTER": "(uid=alice)"}, "containing {login}"),
        ({"LDAP_START_TLS": "maybe"}, "on or off"),
        ({"LDAP_CA_FILE": "/nonexistent/ca.pem"}, "no such file"),
    ],
)
def test_unsafe_or_broken_settings_refuse_to_start(overrides, complaint):
    with pytest.raises(ConfigError, match=complaint):
        settings_of(ldap_config(**overrides))


def test_plaintext_only_with_the_development_switch():
    plain = {"LDAP_URLS": "ldap://127.0.0.1:3389", "LDAP_ALLOW_PLAINTEXT": True}
    assert settings_of(ldap_config(**plain)).urls == ("ldap://127.0.0.1:3389",)
    with pytest.raises(ConfigError, match="development only"):
        settings_of(ldap_config(ENV="production", **plain))
    assert settings_of(ldap_config(LDAP_URLS="ldap://ldap.xamd.edu.cn", LDAP_START_TLS="on")).start_tls
