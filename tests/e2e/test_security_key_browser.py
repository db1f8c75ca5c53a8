"""安全密钥 and 备用码 in Chromium: bind a key from the dialog with a virtual authenticator (CDP WebAuthn),
log in with it (offered first), then generate 备用码 and get in with one instead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import serve_portal
from tests.e2e.pages import (
    dialog,
    expect_modal_dialog,
    expect_welcome,
    finish_dialog,
    log_in,
    log_out,
    open_twofa_settings,
)

pytestmark = pytest.mark.e2e
SHOTS = Path("/tmp")


@pytest.fixture
def live_server(tmp_path):
    """Served as http://localhost:PORT: browsers refuse an IP address as the WebAuthn RP ID."""
    with serve_portal(tmp_path / "e2e.db", host_name="localhost") as server:
        yield server


def add_virtual_authenticator(page) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "usb",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})


def key_row(page):
    return page.locator("tr[data-method='webauthn']")


def test_bind_a_security_key_log_in_with_it_and_with_a_recovery_code(live_server, page):
    account = live_server.create_user("alice@mail.xamd.edu.cn", name="Alice", totp=False)
    live_server.run(
        lambda: __import__("portal.services.accounts", fromlist=["x"]).set_policy(account, methods="webauthn")
    )
    add_virtual_authenticator(page)
    log_in(page, account)
    open_twofa_settings(page)

    key_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "安全密钥绑定")
    box.get_by_label("名称").fill("YubiKey 5")
    page.screenshot(path=str(SHOTS / "e2e-webauthn-bind.png"))
    box.get_by_role("button", name="绑定", exact=True).click()
    finish_dialog(page, "绑定成功")
    expect(key_row(page)).to_contain_text("YubiKey 5")
    expect(key_row(page).get_by_role("link", name="添加")).to_be_visible()

    # 备用码, offered now that a factor is bound (the binding was a fresh verification)
    page.get_by_role("link", name="生成备用码").click()
    page.get_by_role("button", name="生成备用码").click()
    codes = page.locator("[data-recovery-code]").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", code) for code in codes)
    with page.expect_download() as download:
        page.get_by_role("link", name="下载").click()
    assert codes[0] in Path(download.value.path()).read_text()
    page.get_by_role("link", name="完成").click()

    log_out(page)
    log_in(page, account)
    expect(page.get_by_role("button", name="使用安全密钥")).to_be_visible()  # offered first
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "e2e-webauthn-login-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(SHOTS / "e2e-webauthn-login.png"))
    page.get_by_role("button", name="使用安全密钥").click()
    expect_welcome(page)

    log_out(page)
    log_in(page, account)
    page.get_by_text("更换验证方式").click()
    page.get_by_role("link", name="备用码").click()
    page.get_by_label("备用码").fill(codes[1].upper())
    page.get_by_role("button", name="确定").click()
    expect_welcome(page)
    assert dialog(page).count() == 0
