"""A secret the data key cannot decrypt (another PORTAL_DATA_KEY, a damaged row) fails closed, clearly.

No 500: the second step says the method cannot be used now and offers the others, the event is audited,
the failure is not counted against the user, and `flask --app wsgi doctor` / `init-db` name the problem.
"""

from __future__ import annotations

from cryptography.fernet import Fernet

from portal.models import AuditEvent, Factor
from portal.services import throttle
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import location


def damage(user, method: str = "totp") -> None:
    """The factor's secret as another data key encrypted it."""
    foreign = Fernet(Fernet.generate_key()).encrypt(b"JBSWY3DPEHPK3PXPJBSWY3DP").decode()
    Factor.update(secret=foreign).where((Factor.user == user) & (Factor.method == method)).execute()


def test_an_unreadable_seed_fails_closed_with_a_clear_message(browser, user, totp_secret, clock):
    damage(user)
    assert location(browser.login(user.account, PASSWORD)) == "/login/verify"

    response = browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)})

    assert response.status_code == 503
    assert "系统无法读取该验证方式的密钥" in text(response) and "请使用其他验证方式" in text(response)
    assert location(browser.get("/")) == "/login/verify"  # still half-logged-in: nothing let through
    event = AuditEvent.get((AuditEvent.event == "login_verify") & (AuditEvent.outcome == "error"))
    assert "secret_unreadable" in event.detail and event.account == user.account
    assert throttle.failures("otp", user.account) == 0  # the server's fault, not a guess


def test_the_doctor_names_unreadable_secrets(app, user, totp_secret):
    runner = app.test_cli_runner()
    healthy = runner.invoke(args=["doctor"])
    assert healthy.exit_code == 0 and "reads every stored secret" in healthy.output

    damage(user)
    sick = runner.invoke(args=["doctor"])
    assert sick.exit_code == 1 and "1 second factors cannot be decrypted" in sick.output
    init = runner.invoke(args=["init-db"])
    assert init.exit_code == 0 and "warning: 1 second factors cannot be decrypted" in init.output


def test_the_doctor_notices_another_data_key(app, user, totp_secret):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0  # remembers the key the database is used with
    app.config["DATA_KEY"] = "another-data-key-" + "z" * 32

    sick = runner.invoke(args=["doctor"])

    assert sick.exit_code == 1
    assert "not the key this database was set up with" in sick.output
    assert "1 second factors cannot be decrypted" in sick.output
