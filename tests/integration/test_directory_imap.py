"""Primary passwords checked by an IMAP login to the mail store itself (the real Dovecot of these tests).

Dovecot (A) of tests/integration accepts one password for every user from 127.0.0.1: here it stands
in for a mail store whose own user database holds the passwords.
"""

from __future__ import annotations

import pytest

from portal.config import ConfigError
from portal.directory.imap import ImapDirectory
from portal.models import User
from tests.api.support import closed_port_url
from tests.helpers import Browser, text
from tests.views.support import location

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_g")]
ACCOUNT = "zhaoliu@mail.xamd.edu.cn"


@pytest.fixture
def app_config(app_config, backend_dovecot) -> dict:
    return {
        **app_config,
        "PASSWORD_BACKEND": "imap",
        "IMAP_PASSWORD_URL": f"imap://127.0.0.1:{backend_dovecot.imap_port}",
    }


def web_login(app, login: str, password: str):
    return Browser(app.test_client()).login(login, password)


def test_the_mail_stores_password_logs_in_and_provisions_the_account(app, ctx, backend_password):
    assert location(web_login(app, ACCOUNT, backend_password)) == "/"
    assert User.get(User.account == ACCOUNT).password_hash == ""  # the store holds the password


def test_a_wrong_password_is_refused(app, ctx):
    response = web_login(app, ACCOUNT, "Not-the-password-1")
    assert response.status_code == 401 and "账号或密码错误" in text(response)
    assert User.select().count() == 0


def test_a_store_that_does_not_answer_is_a_temporary_failure(app, ctx, backend_password):
    from portal import directory

    app.config["IMAP_PASSWORD_URL"] = closed_port_url().replace("http://", "imap://").rstrip("/")
    directory.init_app(app)
    response = web_login(app, ACCOUNT, backend_password)
    assert response.status_code == 503 and "系统繁忙" in text(response)


@pytest.mark.parametrize(
    "url, complaint",
    [
        ("imap://mail.xamd.edu.cn:143", "only to this host"),
        ("http://mail.xamd.edu.cn", "expected imaps://"),
        ("imaps://", "expected imaps://"),
    ],
)
def test_an_unprotected_or_broken_url_refuses_to_start(url, complaint):
    with pytest.raises(ConfigError, match=complaint):
        ImapDirectory.from_config({"IMAP_PASSWORD_URL": url, "IMAP_CA_FILE": ""})
