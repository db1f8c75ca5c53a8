"""The 邮箱安全 App as an installable web app (issue #13), in Chromium at phone size.

What a phone gives the App beyond test_app_browser.py's flows: Chromium's own installability check
(manifest and service worker, as Lighthouse asks), the shell and the codes offline from the service
worker's cache, keys kept non-extractable in IndexedDB, the camera reading the bind QR (Chromium's fake
camera plays a video of it), and a Web Push turned by the service worker into a notification that opens
the approval. Headless Chromium has no push service to subscribe to, so the push is handed to the
service worker over the DevTools protocol; the portal's sending side is tested against a stub push
service in tests/api.
"""

from __future__ import annotations

import json
import re
import struct
import time
from pathlib import Path

import pyotp
import pytest
import qrcode
from playwright.sync_api import expect

from portal import crypto
from portal.models import Factor, User
from tests.e2e.app_phone import (  # noqa: F401 -- new_phone is a fixture
    PHONE,
    SCREENSHOTS,
    Phone,
    app_row,
    bind_app,
    expect_polled_dialog,
    expect_polled_welcome,
    expect_push,
    new_phone,
    qr_url,
    set_up_bound_account,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.e2e.pages import expect_modal_dialog, expect_welcome, finish_dialog, log_in, open_twofa_settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_server(app_live_server):
    return app_live_server


def wait_for_worker(phone: Phone) -> None:
    """The service worker is installed (shell cached) and controls the App after one reload."""
    phone.page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    phone.page.reload()
    expect(phone.page.locator(".bar h1")).to_contain_text("邮箱安全")
    assert phone.page.evaluate("navigator.serviceWorker.controller && navigator.serviceWorker.controller.scriptURL")


def server_codes(live_server, account: str) -> set[str]:
    """The App codes the portal accepts now (its ±1 step window)."""

    def work():
        factor = Factor.get((Factor.user == User.get(User.account == account)) & (Factor.method == "app"))
        totp = pyotp.TOTP(crypto.decrypt(factor.secret))
        now = time.time()
        return {totp.at(now + offset) for offset in (-30, 0, 30)}

    return live_server.run(work)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


# --- installable -------------------------------------------------------------------------------


def test_the_app_is_installable(live_server, chromium, tmp_path):
    """Chromium's installability check passes: manifest fields, icons, a service worker controlling /app.

    A persistent profile, because Chromium never offers to install from an incognito one.
    """
    context = chromium.browser_type.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        base_url=live_server.url,
        locale="zh-CN",
        **PHONE,
    )
    try:
        page = context.new_page()
        page.goto("/app")
        phone = Phone(page)
        wait_for_worker(phone)
        cdp = context.new_cdp_session(page)

        assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
        manifest = cdp.send("Page.getAppManifest")
        assert manifest["url"] == f"{live_server.url}/app/manifest.webmanifest"
        assert manifest["errors"] == []
        fields = json.loads(manifest["data"])
        assert fields["name"] == fields["short_name"] == "邮箱安全"
        assert (fields["display"], fields["start_url"], fields["scope"]) == ("standalone", "/app", "/app")
        sizes = {}
        for icon in fields["icons"]:
            response = page.request.get(icon["src"])
            assert response.ok, icon
            if icon["type"] == "image/png":
                sizes[icon["sizes"]] = png_size(response.body())
        assert sizes == {"192x192": (192, 192), "512x512": (512, 512)}

        worker = page.request.get("/app/sw.js")
        assert worker.headers["service-worker-allowed"] == "/app"
        assert worker.headers["content-type"].startswith("text/javascript")
        scope = page.evaluate("navigator.serviceWorker.getRegistration('/app').then(r => r && r.scope)")
        assert scope == f"{live_server.url}/app"
    finally:
        context.close()


# --- offline, and what the phone keeps -------------------------------------------------------------


def test_the_app_opens_offline_with_its_codes(live_server, page, new_phone, problems):
    """Bound once online; then, without a network, the App opens from its cache and shows the codes."""
    phone = new_phone()
    account = live_server.create_user("pwaoffline@mail.xamd.edu.cn", totp=False)
    log_in(page, account)
    open_twofa_settings(page)
    bind_app(page, phone, account, live_server.url)
    wait_for_worker(phone)

    problems.expect_offline()
    phone.page.context.set_offline(True)
    phone.page.reload()
    phone.expect_listed(account)
    assert phone.code_for(account) in server_codes(live_server, account)
    expect(phone.page.locator("#app-offline")).to_be_visible(timeout=TIMEOUT_MS)
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-app-offline.png"))

    # The device key cannot be read back by any script, and the seed is stored only encrypted.
    kept = phone.page.evaluate(
        """async () => {
            const db = await new Promise((ok, no) => {
                const r = indexedDB.open("mail-security-app"); r.onsuccess = () => ok(r.result); r.onerror = no;
            });
            const rows = await new Promise(ok => {
                const q = db.transaction("accounts").objectStore("accounts").getAll(); q.onsuccess = () => ok(q.result);
            });
            const row = rows[0];
            let exported = "refused";
            try { await crypto.subtle.exportKey("pkcs8", row.privateKey); exported = "exported"; } catch (e) {}
            const stored = Object.values(row).filter(v => typeof v === "string").join(" ");
            return {count: rows.length, extractable: row.privateKey.extractable, type: row.privateKey.type,
                    algorithm: row.privateKey.algorithm.name, exported,
                    seedIsBytes: row.seed.data instanceof ArrayBuffer, stored};
        }"""
    )
    assert kept["count"] == 1 and kept["type"] == "private" and kept["algorithm"] in ("Ed25519", "ECDSA")
    assert (kept["extractable"], kept["exported"], kept["seedIsBytes"]) == (False, "refused", True)
    secret = live_server.run(
        lambda: crypto.decrypt(
            Factor.get((Factor.method == "app") & (Factor.user == User.get(User.account == account))).secret
        )
    )
    assert secret not in kept["stored"]

    phone.page.context.set_offline(False)
    expect(phone.page.locator("#app-offline")).to_be_hidden(timeout=TIMEOUT_MS)


# --- 扫一扫 with the camera -------------------------------------------------------------------------


def qr_video(text: str, path: Path, width: int = 640, height: int = 480) -> Path:
    """A still video (Y4M, grey) of a QR on white, for Chromium's fake camera."""
    code = qrcode.QRCode(border=4, box_size=1)
    code.add_data(text)
    matrix = code.get_matrix()
    scale = min(width, height) * 9 // 10 // len(matrix)
    side = scale * len(matrix)
    left, top = (width - side) // 2, (height - side) // 2
    luma = bytearray(b"\xeb" * (width * height))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (top + y * scale + dy) * width + left + x * scale
                    luma[start : start + scale] = b"\x10" * scale
    chroma = b"\x80" * (width // 2 * height // 2 * 2)
    frame = b"FRAME\n" + bytes(luma) + chroma
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * 10)
    return path


def test_scan_the_bind_qr_with_the_camera(live_server, page, chromium, tmp_path):
    """ "+" → 扫一扫 opens the back camera; the bind QR in front of it opens 确定绑定 → 绑定成功 on the web."""
    account = live_server.create_user("pwacamera@mail.xamd.edu.cn", totp=False)
    log_in(page, account)
    open_twofa_settings(page)
    app_row(page).get_by_role("link", name="绑定", exact=True).click()
    box = expect_modal_dialog(page, "二次验证设置")
    url = qr_url(box, live_server.url, "enroll")

    video = qr_video(url, tmp_path / "qr.y4m")
    camera = chromium.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        context = camera.new_context(base_url=live_server.url, locale="zh-CN", **PHONE)
        context.grant_permissions(["camera"], origin=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        phone = Phone(context.new_page())
        phone.open()
        phone.page.get_by_role("button", name="添加").click()
        phone.page.get_by_role("menuitem", name="扫一扫").click()
        expect(phone.page.get_by_role("heading", name="绑定邮箱安全 App")).to_be_visible()
        phone.page.get_by_role("button", name="确定绑定").click()
        phone.expect_result(f"绑定成功:{account}")
        phone.expect_listed(account)
        # The camera is released once the QR is read.
        assert phone.page.evaluate("document.getElementById('app-camera').srcObject") is None
    finally:
        camera.close()
    expect_polled_dialog(page, "绑定成功")
    finish_dialog(page, "绑定成功")


# --- a push becomes a notification that opens the approval ---------------------------------------


def registration_id(cdp, page, origin: str) -> str:
    """The service worker registration of ``origin`` (/app), as DevTools names it."""
    found: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: found.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for registration in found:
            if registration["scopeURL"] == f"{origin}/app" and not registration["isDeleted"]:
                return registration["registrationId"]
        page.wait_for_timeout(100)  # lets Playwright deliver the DevTools events
    raise AssertionError(f"no service worker registration for {origin}/app: {found}")


def test_a_push_shows_who_is_logging_in_and_opens_the_approval(live_server, page, new_phone):
    """The push holds only the challenge id; the worker fetches the rest (signed) and notifies
    "张三 正在登录邮箱,请确认"; opening the notification shows that request; the right number logs in."""
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "pwapush@mail.xamd.edu.cn", name="张三")
    wait_for_worker(phone)
    phone.page.context.grant_permissions(["notifications"], origin=live_server.url)

    log_in(page, account)
    number = expect_push(page)
    card = phone.challenge(account, "登录")
    challenge = int(card.get_attribute("data-challenge") or 0)

    cdp = phone.page.context.new_cdp_session(phone.page)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": live_server.url,
            "registrationId": registration_id(cdp, phone.page, live_server.url),
            "data": json.dumps({"challenge": challenge}),
        },
    )
    shown: list[dict] = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not shown and time.monotonic() < deadline:
        shown = phone.page.evaluate(
            """navigator.serviceWorker.ready.then(r => r.getNotifications()).then(list =>
                 list.map(n => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url})))"""
        )
        phone.page.wait_for_timeout(100)
    assert len(shown) == 1, shown
    assert shown[0]["title"] == "张三 正在登录邮箱,请确认"
    assert account in shown[0]["body"] and "127.0.0.1" in shown[0]["body"]
    assert (shown[0]["tag"], shown[0]["url"]) == (f"challenge-{challenge}", f"/app?challenge={challenge}")

    phone.page.goto(shown[0]["url"])  # what tapping the notification opens
    focused = phone.page.locator(f"#app-challenges li.challenge.focus[data-challenge='{challenge}']")
    expect(focused).to_be_visible(timeout=TIMEOUT_MS)
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-app-from-notification.png"))
    phone.pick(phone.challenge(account, "登录"), number, "已确认授权")
    expect_polled_welcome(page)
    expect_welcome(page)


def test_the_challenge_screen_reads_like_the_manual(live_server, page, new_phone):
    """确定是否授权: who, where, the three numbers, 确定授权 / 取消授权 / 不是本人操作; 取消授权 declines."""
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "pwadecline@mail.xamd.edu.cn")
    log_in(page, account)
    expect_push(page)
    card = phone.challenge(account, "登录")
    for name in ("确定授权", "取消授权", "不是本人操作"):
        expect(card.get_by_role("button", name=name)).to_be_visible()
    expect(card.locator("dt")).to_have_text(["帐号", "浏览器", "系统", "IP", "时间"])
    expect(card.locator("dt", has_text="时间").locator("+ dd")).to_have_text(re.compile(r"^\d{4}/\d{1,2}/\d{1,2} "))
    phone.deny(card, "取消授权")
    expect(page.get_by_role("alert")).to_be_visible(timeout=TIMEOUT_MS)


def test_several_accounts_in_one_app(live_server, new_page, new_phone, problems):
    """Two mail accounts on one phone: both codes listed; a login QR of the second is approved with its
    key (the App asks with each account's key until the owner answers)."""
    phone = new_phone()
    first, second = new_page(), new_page()
    alice = set_up_bound_account(live_server, first, phone, "pwamulti1@mail.xamd.edu.cn")
    bob = set_up_bound_account(live_server, second, phone, "pwamulti2@mail.xamd.edu.cn")
    phone.expect_listed(alice)
    phone.expect_listed(bob)
    assert phone.code_for(alice) in server_codes(live_server, alice)
    assert phone.code_for(bob) in server_codes(live_server, bob)

    log_in(second, bob)
    expect_push(second)
    second.locator("main .card").get_by_role("link", name="扫二维码").click()
    url = qr_url(second.locator("main .card"), live_server.url, "t")
    problems.expect_status(f"/api/app/v1/tickets/{url.rsplit('/', 1)[1]}", 403)  # alice's key asks first: not hers
    phone.scan(url)
    expect(phone.page.get_by_role("heading", name="扫码登录")).to_be_visible()
    expect(phone.page.locator("#app-ticket-facts dt", has_text="帐号").locator("+ dd")).to_have_text(bob)
    phone.page.screenshot(path=str(SCREENSHOTS / "e2e-app-scan-login.png"))
    phone.page.get_by_role("button", name="临时登录").click()
    phone.expect_result("已确认授权,请回到网页")
    expect_polled_welcome(second)


def test_the_app_speaks_english_to_an_english_phone(live_server, page, new_phone):
    """A phone whose App is in English (the language cookie here): the request card, its times and the
    push notification the service worker shows are English (core.js's t() over /app's messages block)."""
    phone = new_phone()
    account = set_up_bound_account(live_server, page, phone, "pwaenglish@mail.xamd.edu.cn", name="Zhang San")
    phone.page.context.add_cookies([{"name": "portal_lang", "value": "en", "url": live_server.url}])
    phone.page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    phone.page.reload()  # through the worker, which caches this English shell
    expect(phone.page.locator("html")).to_have_attribute("lang", "en")
    expect(phone.page.locator(".bar h1")).to_have_text("Mail Security")
    phone.page.context.grant_permissions(["notifications"], origin=live_server.url)

    log_in(page, account)
    number = expect_push(page)
    card = phone.page.locator("#app-challenges li.challenge").filter(has_text=account)
    expect(card).to_contain_text("Approve this sign-in?", timeout=TIMEOUT_MS)
    for name in ("Approve", "Decline", "This wasn't me"):
        expect(card.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(card.locator("dt")).to_have_text(["Account", "Browser", "System", "IP", "Time"])
    expect(card.locator("dt", has_text="Time").locator("+ dd")).to_have_text(re.compile(r"^\d{1,2}/\d{1,2}/\d{4}, "))
    assert not re.search(r"[\u4e00-\u9fff]", card.inner_text()), card.inner_text()

    cdp = phone.page.context.new_cdp_session(phone.page)
    challenge = int(card.get_attribute("data-challenge") or 0)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": live_server.url,
            "registrationId": registration_id(cdp, phone.page, live_server.url),
            "data": json.dumps({"challenge": challenge}),
        },
    )
    shown: list[dict] = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not shown and time.monotonic() < deadline:
        shown = phone.page.evaluate(
            """navigator.serviceWorker.ready.then(r => r.getNotifications())
                 .then(list => list.map(n => ({title: n.title, body: n.body})))"""
        )
        phone.page.wait_for_timeout(100)
    assert [n["title"] for n in shown] == ["Zhang San is signing in to mail: please confirm"], shown
    assert shown[0]["body"].endswith("\nOpen the App and choose the number shown on the web page to approve")

    card.get_by_role("button", name=str(number), exact=True).click()
    card.get_by_role("button", name="Approve", exact=True).click()
    expect(phone.page.locator("#app-status")).to_have_text("Approved")
    expect_polled_welcome(page)
