"""A throw-away OpenLDAP server (Debian's ``slapd``) for development and tests: never for production.

It runs in the foreground from a private directory: its own cn=config, a certificate authority made
for this run (trustme), StartTLS on ``ldap://127.0.0.1:PORT`` and TLS on ``ldaps://127.0.0.1:PORT``,
a service account that may search but not read passwords, and the people given to it. Used by
``flask --app wsgi dev-ldap`` (``make run-ldap``) and by ``tests/integration``.
"""

from __future__ import annotations

import base64
import ctypes
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = "dc=xamd,dc=edu,dc=cn"
ADMIN_DN = f"cn=admin,{SUFFIX}"
SERVICE_DN = f"cn=portal,ou=services,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
SLAPD, SLAPADD = "/usr/sbin/slapd", "/usr/sbin/slapadd"
SCHEMAS = ("core", "cosine", "inetorgperson")
START_SECONDS = 15
PR_SET_PDEATHSIG = 1  # prctl(2)


@dataclass
class Person:
    uid: str
    mail: str
    password: str
    name: str = ""

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE}"


@dataclass
class Slapd:
    """One slapd in ``workdir``; ``start`` it, ``stop`` it, start it again on the same ports."""

    workdir: Path
    people: list[Person] = field(default_factory=list)
    admin_password: str = "dev-admin-password"
    service_password: str = "dev-service-password"
    names: tuple[str, ...] = ("127.0.0.1", "localhost")  # in the server certificate
    ldap_port: int = 0
    ldaps_port: int = 0
    process: subprocess.Popen | None = None

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def log(self) -> Path:
        return self.workdir / "slapd.log"

    def settings(self, start_tls: bool = True) -> dict[str, str]:
        """The PORTAL_* settings that point the portal at this server."""
        return {
            "PASSWORD_BACKEND": "ldap",
            "LDAP_URLS": self.ldap_url if start_tls else self.ldaps_url,
            "LDAP_START_TLS": "on" if start_tls else "off",
            "LDAP_CA_FILE": str(self.ca_file),
            "LDAP_BIND_DN": SERVICE_DN,
            "LDAP_BIND_PASSWORD": self.service_password,
            "LDAP_BASE_DN": SUFFIX,
        }

    def start(self) -> Slapd:
        if not (self.workdir / "slapd.d").exists():
            self._prepare()
        self.ldap_port = self.ldap_port or _free_port()
        self.ldaps_port = self.ldaps_port or _free_port()
        urls = f"ldap://127.0.0.1:{self.ldap_port}/ ldaps://127.0.0.1:{self.ldaps_port}/"
        with open(self.log, "ab") as out:  # -d: stay in the foreground (and log to stderr)
            self.process = subprocess.Popen(
                [SLAPD, "-h", urls, "-F", str(self.workdir / "slapd.d"), "-d", "256"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            if all(_accepts(port) for port in (self.ldap_port, self.ldaps_port)):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the server's files ---------------------------------------------------------------------

    def _prepare(self) -> None:
        import trustme  # a development dependency: only this throw-away server needs it

        for folder in ("slapd.d", "data"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_file))
        issued = ca.issue_cert(*self.names)
        issued.cert_chain_pems[0].write_to_path(str(self.workdir / "server.pem"))
        issued.private_key_pem.write_to_path(str(self.workdir / "server.key"))
        config = self.workdir / "config.ldif"
        config.write_text(self._config())
        (self.workdir / "data.ldif").write_text(self._data())
        for database, source in (("0", config), ("1", self.workdir / "data.ldif")):
            done = subprocess.run(
                [SLAPADD, "-n", database, "-F", str(self.workdir / "slapd.d"), "-l", str(source)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode != 0:
                raise RuntimeError(f"slapadd -n{database} failed: {done.stderr}")

    def _config(self) -> str:
        includes = "\n".join(f"include: file:///etc/ldap/schema/{name}.ldif" for name in SCHEMAS)
        return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.workdir}/slapd.pid
olcTLSCACertificateFile: {self.ca_file}
olcTLSCertificateFile: {self.workdir}/server.pem
olcTLSCertificateKeyFile: {self.workdir}/server.key

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {self.admin_password}
olcDbDirectory: {self.workdir}/data
olcDbMaxSize: 33554432
olcDbIndex: objectClass eq
olcDbIndex: uid,mail eq
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by dn.exact="{SERVICE_DN}" read by self read by * none
"""

    def _data(self) -> str:
        entries = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: xamd\no: xamd",
            f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
            f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services",
            f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: portal\n"
            f"userPassword: {self.service_password}",
        ]
        entries += [entry_ldif(person) for person in self.people]
        return "\n\n".join(entries) + "\n"


def entry_ldif(person: Person) -> str:
    name = person.name or person.uid
    return (
        f"dn: {person.dn}\nobjectClass: inetOrgPerson\nuid: {person.uid}\n"
        f"cn:: {_b64(name)}\nsn:: {_b64(name)}\ndisplayName:: {_b64(name)}\n"
        f"mail: {person.mail}\nuserPassword:: {_b64(person.password)}"
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _die_with_parent() -> None:
    """In the child: a slapd whose test run or dev-ldap is killed stops too (Linux PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux/glibc: stop() at the end still does it
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
