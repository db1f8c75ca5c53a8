"""Primary passwords from a real OpenLDAP (Debian's slapd, StartTLS and LDAPS with a CA made for the run).

The web login, ``/mail/auth`` and the checkpassword program all check the directory's password; the
account row appears at the first login; deleted or filtered-out users are refused everywhere; a
directory that is down, slow or not trusted is a temporary failure within the timeout, never "wrong
password", and it counts against nobody.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
import trustme
from ldap3 import MODIFY_REPLACE, Connection, Server, Tls

from portal import directory
from portal.directory.dev_slapd import ADMIN_DN, Person, Slapd
from portal.models import AuditEvent, User
from portal.services import accounts, app_passwords, throttle
from portal.services.client import Client
from portal.services.errors import Unavailable
from tests.checkpassword_program import replied, request, run, serve
from tests.conftest import PASSWORD, skip_or_fail
from tests.helpers import Browser, text
from tests.views.support import location

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_g")]

ZHANGSAN = Person("zhangsan", "zhangsan@mail.xamd.edu.cn", "Zhang-dir-2026", "张三")
LISI = Person("lisi", "lisi@mail.xamd.edu.cn", "Lisi-dir-2026", "李四")
BUSY = "系统繁忙,暂时无法校验密码,请稍后再试"
INJECTIONS = ["*", "x)(uid=*", "*)(|(uid=*", "\\2a", "zhangsan)", "zhang*"]


def slapd_or_skip() -> None:
    if not shutil.which("slapd") and not Path("/usr/sbin/slapd").exists():
        skip_or_fail("slapd not installed (apt-get install slapd ldap-utils)")


@pytest.fixture(scope="module")
def slapd():
    slapd_or_skip()
    server = Slapd(Path(tempfile.mkdtemp(prefix="slapd-")), [ZHANGSAN, LISI]).start()
    yield server
    server.remove()


@pytest.fixture
def app_config(app_config, slapd) -> dict:
    return {**app_config, **slapd.settings(), "LDAP_TIMEOUT": 2}


@pytest.fixture
def admin(slapd):
    """The directory's administrator (to change entries the way the university's IT would)."""
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(slapd.ca_file))
    connection = Connection(Server(slapd.ldaps_url, use_ssl=True, tls=tls), ADMIN_DN, slapd.admin_password)
    assert connection.bind(), connection.result
    yield connection
    connection.unbind()


def add_person(admin: Connection, person: Person) -> None:
    """A new entry in the directory, as the university's IT would add it."""
    attributes = {"uid": person.uid, "mail": person.mail, "cn": person.name, "sn": person.name}
    assert admin.add(person.dn, ["inetOrgPerson"], {**attributes, "userPassword": person.password}), admin.result


def reconfigure(app, **settings) -> None:
    """Other directory settings for this test's app (the backend is built from them at start-up)."""
    app.config.update(settings)
    directory.init_app(app)


def web_login(app, login: str, password: str):
    return Browser(app.test_client()).login(login, password)


def test_login_by_mail_or_uid_provisions_one_account(app, ctx, slapd):
    assert User.by_account(ZHANGSAN.mail) is None

    assert location(web_login(app, ZHANGSAN.mail, ZHANGSAN.password)) == "/"
    second = web_login(app, "ZhangSan", ZHANGSAN.password)
    assert location(second) == "/", text(second)[-1500:]

    user = User.get(User.account == ZHANGSAN.mail)
    assert (user.name, user.password_hash) == ("张三", "")  # no local password: the directory holds it
    assert len(user.directory_id) == 36 and User.select().count() == 1
    assert AuditEvent.select().where(AuditEvent.event == "user_provisioned").count() == 1


def test_the_display_name_is_refreshed_at_login(app, ctx, slapd, admin):
    web_login(app, "lisi", LISI.password)
    admin.modify(LISI.dn, {"displayName": [(MODIFY_REPLACE, ["李四(信息学院)"])]})
    try:
        web_login(app, "lisi", LISI.password)
        assert User.get(User.account == LISI.mail).name == "李四(信息学院)"
    finally:
        admin.modify(LISI.dn, {"displayName": [(MODIFY_REPLACE, ["李四"])]})


def test_a_wrong_password_is_refused_and_counted(app, ctx, slapd):
    response = web_login(app, "zhangsan", "Not-the-password-1")
    assert response.status_code == 401 and "账号或密码错误" in text(response)
    assert throttle.failures("password", "zhangsan") == 1


@pytest.mark.parametrize("login", INJECTIONS)
def test_injection_strings_find_nobody(app, ctx, slapd, login):
    response = web_login(app, login, ZHANGSAN.password)
    assert response.status_code == 401 and User.select().count() == 0


def test_a_nul_in_the_login_is_refused_before_the_directory(app, ctx, slapd):
    assert web_login(app, "zhangsan\x00", ZHANGSAN.password).status_code == 400
    assert not app_passwords.authenticate("zhangsan\x00", ZHANGSAN.password, "imap", "192.0.2.9").ok
    assert User.select().count() == 0


def test_a_user_the_directory_no_longer_finds_is_refused_on_the_web_and_by_mail(app, ctx, slapd, admin):
    gone = Person("wangwu", "wangwu@mail.xamd.edu.cn", "Wang-dir-2026", "王五")
    add_person(admin, gone)
    assert location(web_login(app, gone.uid, gone.password)) == "/"
    user = User.get(User.account == gone.mail)
    _, plaintext = app_passwords.create(user, "Foxmail", Client())
    assert app_passwords.authenticate(gone.mail, plaintext, "imap", "192.0.2.9").ok

    admin.delete(gone.dn)

    assert web_login(app, gone.uid, gone.password).status_code == 401
    for secret in (plaintext, gone.password):
        assert not app_passwords.authenticate(gone.mail, secret, "imap", "192.0.2.9").ok
    assert User.get_by_id(user.id).id == user.id  # the row (factors, app passwords) stays for when they return


def test_a_filter_can_keep_disabled_people_out(app, ctx, slapd, admin):
    reconfigure(
        app, LDAP_USER_FILTER="(&(objectClass=inetOrgPerson)(!(employeeType=disabled))(|(mail={login})(uid={login})))"
    )
    admin.modify(LISI.dn, {"employeeType": [(MODIFY_REPLACE, ["disabled"])]})
    try:
        assert web_login(app, "lisi", LISI.password).status_code == 401
    finally:
        admin.modify(LISI.dn, {"employeeType": [(MODIFY_REPLACE, [])]})
    assert location(web_login(app, "lisi", LISI.password)) == "/"


def test_a_local_password_keeps_working_for_break_glass_admins(app, ctx, slapd):
    accounts.create("root@mail.xamd.edu.cn", PASSWORD, admin=True)
    assert location(web_login(app, "root@mail.xamd.edu.cn", PASSWORD)) == "/settings/security/2fa"  # must bind


def test_an_account_with_a_local_password_does_not_take_the_directorys(app, ctx, slapd):
    accounts.create(LISI.mail, PASSWORD)
    assert web_login(app, LISI.mail, LISI.password).status_code == 401
    assert web_login(app, "lisi", LISI.password).status_code == 401  # not by uid either
    assert location(web_login(app, "lisi@mail.xamd.edu.cn", PASSWORD)) == "/"


def test_a_stopped_directory_is_a_temporary_failure_then_recovers(app, ctx, slapd):
    slapd.stop()
    try:
        response = web_login(app, "zhangsan", ZHANGSAN.password)
        assert response.status_code == 503 and BUSY in text(response)
        assert throttle.failures("password", "zhangsan") == 0  # not the user's failure
        event = AuditEvent.get(AuditEvent.event == "directory_unavailable")
        assert event.outcome == "error" and event.account == "zhangsan"
        with pytest.raises(Unavailable):  # a mail client is told to try again, not that its password is wrong
            app_passwords.authenticate("zhangsan", ZHANGSAN.password, "imap", "192.0.2.9")
    finally:
        slapd.start()
    assert location(web_login(app, "zhangsan", ZHANGSAN.password)) == "/"


def test_mail_auth_and_checkpassword_take_the_directory_password(app, ctx, app_config, slapd):
    headers = {
        "Auth-Method": "plain",
        "Auth-User": "zhangsan",
        "Auth-Pass": ZHANGSAN.password,
        "Auth-Protocol": "imap",
        "Auth-Login-Attempt": "1",
        "Client-IP": "192.0.2.1",
    }
    app.config["MAIL_BACKENDS"] = "imap=127.0.0.1:143"
    answer = app.test_client().get("/mail/auth", headers=headers)
    assert answer.headers["Auth-Status"] == "OK"

    with serve(app) as portal:
        assert replied(run(portal, request("zhangsan", ZHANGSAN.password)))["USER"] == ZHANGSAN.mail
        assert run(portal, request("zhangsan", "Not-the-password-1")).returncode == 1
        slapd.stop()
        try:
            assert run(portal, request("zhangsan", ZHANGSAN.password)).returncode == 111  # Dovecot: try again
            down = app.test_client().get("/mail/auth", headers=headers)
            assert down.headers["Auth-Status"] == "Temporary server problem, try again later"
        finally:
            slapd.start()


def test_over_ldaps_too(app, ctx, slapd):
    reconfigure(app, LDAP_URLS=slapd.ldaps_url, LDAP_START_TLS="off")
    assert location(web_login(app, "lisi", LISI.password)) == "/"


def test_a_directory_certificate_from_another_ca_is_refused(app, ctx, slapd, tmp_path):
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    reconfigure(app, LDAP_CA_FILE=str(tmp_path / "other-ca.pem"))
    response = web_login(app, "zhangsan", ZHANGSAN.password)
    assert response.status_code == 503 and BUSY in text(response)
    assert "CERTIFICATE_VERIFY_FAILED" in AuditEvent.get(AuditEvent.event == "directory_unavailable").detail


def test_a_certificate_for_another_host_is_refused(app, ctx, tmp_path):
    slapd_or_skip()
    elsewhere = Slapd(tmp_path / "elsewhere", [ZHANGSAN], names=("ldap.elsewhere.test",)).start()
    try:
        reconfigure(app, **elsewhere.settings())
        assert web_login(app, "zhangsan", ZHANGSAN.password).status_code == 503
        assert "doesn't match" in AuditEvent.get(AuditEvent.event == "directory_unavailable").detail
    finally:
        elsewhere.remove()


def test_a_server_that_never_answers_fails_within_the_timeout(app, ctx):
    with socket.socket() as hole:  # accepts connections, says nothing
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        reconfigure(app, LDAP_URLS=f"ldap://127.0.0.1:{hole.getsockname()[1]}", LDAP_TIMEOUT=1)
        response = web_login(app, "zhangsan", ZHANGSAN.password)
    assert (
        response.status_code == 503
        and "timed out" in AuditEvent.get(AuditEvent.event == "directory_unavailable").detail
    )


def test_a_directory_user_changes_the_password_in_ldap(app, ctx, slapd, admin):
    """修改密码 with PORTAL_LDAP_PASSWORD_CHANGE=on: an RFC 3062 password modify, as the user."""
    zhou = Person("zhouqi", "zhouqi@mail.xamd.edu.cn", "Zhou-dir-2026", "周七")
    add_person(admin, zhou)
    reconfigure(app, LDAP_PASSWORD_CHANGE="on")
    browser = Browser(app.test_client())
    assert location(browser.login(zhou.uid, zhou.password)) == "/"
    assert 'name="current"' in text(browser.get("/settings/security/password"))

    wrong = browser.post(
        "/settings/security/password",
        {"current": "Not-it-2026", "new": "Zhou-new-pass-31", "repeat": "Zhou-new-pass-31"},
    )
    assert wrong.status_code == 401 and "当前密码错误" in text(wrong)
    done = browser.post(
        "/settings/security/password",
        {"current": zhou.password, "new": "Zhou-new-pass-31", "repeat": "Zhou-new-pass-31"},
    )

    assert "密码已修改" in text(done)
    assert web_login(app, zhou.uid, zhou.password).status_code == 401
    assert location(web_login(app, zhou.uid, "Zhou-new-pass-31")) == "/"
    admin.delete(zhou.dn)


def test_without_ldap_password_change_the_page_links_to_the_university(app, ctx, slapd):
    reconfigure(app, PASSWORD_CHANGE_URL="https://id.xamd.edu.cn/password")
    browser = Browser(app.test_client())
    assert location(browser.login("lisi", LISI.password)) == "/"
    page = text(browser.get("/settings/security/password"))
    assert 'href="https://id.xamd.edu.cn/password"' in page and 'name="current"' not in page


def test_set_admin_works_for_a_directory_user_before_the_first_login(app, ctx, slapd):
    result = app.test_cli_runner().invoke(args=["user", "set-admin", "lisi", "on"])
    assert result.exit_code == 0, result.output
    assert User.get(User.account == LISI.mail).role == "admin"
    import_attempt = app.test_cli_runner().invoke(args=["user", "import", "/dev/null"])
    assert import_attempt.exit_code == 1 and "passwords live in the directory" in import_attempt.output
    refused = app.test_cli_runner().invoke(args=["user", "set-password", LISI.mail, "--password", "Whatever-2026"])
    assert refused.exit_code == 1 and "由目录" in refused.output


def test_several_servers_are_tried_in_order(app, ctx, slapd):
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        reconfigure(app, LDAP_URLS=f"ldap://127.0.0.1:{dead.getsockname()[1]},{slapd.ldap_url}")
        assert location(web_login(app, "lisi", LISI.password)) == "/"
        assert location(web_login(app, "zhangsan", ZHANGSAN.password)) == "/"  # the dead one is skipped now
