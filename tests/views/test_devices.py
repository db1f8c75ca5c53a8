"""信任设备 (/settings/security/devices): list and revoke browsers that skip the second step."""

from __future__ import annotations

import re

import pytest

from portal.models import TrustedDevice
from portal.services import accounts
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

PAGE = "/settings/security/devices"


def device_ids(response) -> list[int]:
    return [int(n) for n in re.findall(r'action="/settings/security/devices/(\d+)/revoke"', text(response))]


@pytest.fixture
def trusted(new_browser, user, totp_secret, clock):
    """Two browsers of ``user`` that logged in with 信任此设备; returns them."""
    browsers = [new_browser(), new_browser()]
    for browser in browsers:
        complete_login(browser, user.account, totp_secret, clock, trust=True)
    return browsers


def test_lists_the_trusted_devices(trusted, user):
    page = trusted[0].get(PAGE)
    assert page.status_code == 200 and "<html" in text(page)
    assert "信任设备" in text(page) and "127.0.0.1" in text(page)
    ids = device_ids(page)
    assert sorted(ids) == sorted(d.id for d in TrustedDevice.select().where(TrustedDevice.user == user))
    assert len(ids) == 2 and "全部清除" in text(page)


def test_empty_list(browser, user):
    browser.login(user.account, PASSWORD)
    page = browser.get(PAGE)
    assert "暂无信任设备" in text(page) and not device_ids(page)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_revoke_one_affects_only_that_browser(trusted, user, htmx):
    first, second = trusted
    page = first.get(PAGE)
    first_device = TrustedDevice.select().order_by(TrustedDevice.id).first()
    response = first.post(f"{PAGE}/{first_device.id}/revoke", htmx=htmx)
    assert response.status_code == 200 and "已移除该信任设备" in text(response)
    assert ("<html" not in text(response)) == htmx
    if htmx:
        assert text(response).lstrip().startswith('<div id="devices"')
    assert device_ids(response) == [i for i in device_ids(page) if i != first_device.id]

    for browser, asks_again in ((first, True), (second, False)):
        browser.post("/logout")
        expected = "/login/verify" if asks_again else "/"
        assert location(browser.login(user.account, PASSWORD)) == expected


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_revoke_all(trusted, user, htmx):
    dialog = trusted[0].get(f"{PAGE}/revoke-all", htmx=htmx)
    assert "确定移除全部 2 台信任设备" in text(dialog)
    response = trusted[0].post(f"{PAGE}/revoke-all", htmx=htmx)
    assert response.status_code == 200 and "已移除 2 台信任设备" in text(response)
    assert ("<html" not in text(response)) == htmx
    if htmx:  # the dialog says so, and the list refreshes itself
        assert response.headers["HX-Trigger"] == "devicesChanged"
        assert "暂无信任设备" in text(trusted[0].get(PAGE, htmx=True, HX_Target="devices"))
    else:
        assert not device_ids(response) and "暂无信任设备" in text(response)
    for browser in trusted:
        browser.post("/logout")
        assert location(browser.login(user.account, PASSWORD)) == "/login/verify"


def test_revoking_twice_or_an_unknown_device_is_a_message(trusted):
    device = TrustedDevice.select().first()
    assert "已移除该信任设备" in text(trusted[0].post(f"{PAGE}/{device.id}/revoke", htmx=True))
    for device_id in (device.id, 999_999, 2_147_483_647):
        response = trusted[0].post(f"{PAGE}/{device_id}/revoke", htmx=True)
        assert response.status_code == 200 and "该设备不存在或已移除" in text(response)


def test_cannot_revoke_another_users_device(trusted, new_browser, user):
    accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    bob = new_browser()
    bob.login("bob@mail.xamd.edu.cn", PASSWORD)
    device = TrustedDevice.select().first()
    response = bob.post(f"{PAGE}/{device.id}/revoke", htmx=True)
    assert "该设备不存在或已移除" in text(response)
    assert "暂无信任设备" in text(bob.get(PAGE))  # bob sees none of alice's devices
    assert TrustedDevice.get_by_id(device.id).revoked_at is None


def test_password_change_revokes_the_devices(trusted, user, totp_secret, clock):
    """Invariant 9: a password change revokes every trusted device."""
    accounts.set_password(user.account, "Another-horse-7")
    browser = trusted[0]
    assert location(browser.login(user.account, "Another-horse-7")) == "/login/verify"
    browser.post("/login/verify", {"method": "totp", "code": clock.next_code(totp_secret)})
    assert "暂无信任设备" in text(browser.get(PAGE))


def test_unbinding_revokes_the_devices(trusted, user, totp_secret, clock):
    """Invariant 9: unbinding a factor revokes every trusted device."""
    response = trusted[0].post(
        "/settings/security/2fa/totp/unbind", {"via": "totp", "code": clock.next_code(totp_secret)}, htmx=True
    )
    assert "解绑成功" in text(response)
    assert "暂无信任设备" in text(trusted[0].get(PAGE))
    assert TrustedDevice.select().where(TrustedDevice.revoked_at.is_null()).count() == 0
