"""The pages read well on a 1280-px desktop and a 390-px phone (item 13 of #9).

Measured in Chromium by bounding boxes: every control stays inside its card (or its dialog), short
labels (badges, buttons, table headings, the header's name and 退出) stay on one line instead of
wrapping a character per line, and nothing makes the page scroll sideways. Wide tables scroll inside
their own box (``.table-scroll``), which is allowed.
"""

from __future__ import annotations

import json

import pyotp
import pytest
from playwright.sync_api import Page, expect

from portal import crypto
from portal.models import Factor, User
from portal.services import accounts
from tests.conftest import PASSWORD
from tests.e2e.conftest import CSP_LISTENER, TIMEOUT_MS
from tests.e2e.pages import DIALOG, log_in, pass_second_step

pytestmark = pytest.mark.e2e

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# Labels that must stay on one line, and table headings that may take two at most (never one per character).
LINES = [
    [".badge, .btn, .brand, .user span, .user button, .methods th, .sidenav a, .match-number, .facts dt", 1],
    [".grid th", 2],
]

# Returns what is wrong on the page: controls outside their box, labels broken over lines, sideways scroll.
MEASURE = """
() => {
  const problems = [];
  const name = (el) => (el.textContent || el.value || el.getAttribute('placeholder') || el.tagName).trim().slice(0, 30);
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth}px > ${window.innerWidth}px`);
  }
  for (const box of document.querySelectorAll('main .card, dialog[open]')) {
    const outer = box.getBoundingClientRect();
    for (const el of box.querySelectorAll('a, button, input, select, textarea, .badge, table')) {
      if (!visible(el) || el.closest('.table-scroll') || (box.matches('.card') && el.closest('dialog'))) continue;
      const r = el.getBoundingClientRect();
      if (r.left < outer.left - 1 || r.right > outer.right + 1) {
        const where = `${Math.round(r.left)}–${Math.round(r.right)}`;
        const room = `${Math.round(outer.left)}–${Math.round(outer.right)}`;
        problems.push(`"${name(el)}" sticks out of its ${box.tagName.toLowerCase()}: ${where} outside ${room}`);
      }
    }
  }
  // Lines of text an element's contents take (distinct tops of the text's boxes).
  const lines = (el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))).size;
  };
  for (const [selector, most] of RULES) {
    for (const el of document.querySelectorAll(selector)) {
      if (visible(el) && lines(el) > most) problems.push(`"${name(el)}" wraps over ${lines(el)} lines`);
    }
  }
  return problems;
}
""".replace("RULES", json.dumps(LINES))


def problems_of(page: Page) -> list[str]:
    return page.evaluate(MEASURE)


@pytest.fixture
def people(live_server):
    """A user with nothing bound, a user forced to bind, and an admin with 第三方 OTP (its secret)."""
    live_server.create_user("zhangsan@mail.xamd.edu.cn", name="张三")
    live_server.create_user("lisi@mail.xamd.edu.cn", name="李四", force=True)
    secret = pyotp.random_base32()

    def admin():
        user = accounts.create("administrator@mail.xamd.edu.cn", PASSWORD, name="网络信息化中心管理员", admin=True)
        Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
        return User.get_by_id(user.id)

    live_server.run(admin)
    return pyotp.TOTP(secret)


@pytest.mark.parametrize("viewport", list(VIEWPORTS), ids=list(VIEWPORTS))
def test_pages_and_dialogs_keep_their_shape(chromium, live_server, people, viewport, tmp_path):
    def fresh_page() -> Page:
        context = chromium.new_context(base_url=live_server.url, locale="zh-CN", viewport=VIEWPORTS[viewport])
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(CSP_LISTENER.replace("window.__e2eReportCsp(", "console.error("))
        contexts.append(context)
        return context.new_page()

    def check(page: Page, what: str) -> None:
        page.wait_for_load_state()
        page.screenshot(path=str(tmp_path / f"{viewport}-{what}.png"), full_page=True)
        found[what] = problems_of(page)

    contexts, found = [], {}
    try:
        page = fresh_page()
        page.goto("/login")
        check(page, "login")

        log_in(page, "lisi@mail.xamd.edu.cn")  # forced binding: the card has the whole row
        expect(page.get_by_role("heading", name="二次验证设置")).to_be_visible()
        check(page, "forced-binding")
        page.locator("tr[data-method='totp']").get_by_role("link", name="绑定", exact=True).click()
        expect(page.locator(DIALOG)).to_be_visible()
        check(page, "bind-dialog")

        page = fresh_page()
        log_in(page, "zhangsan@mail.xamd.edu.cn")
        for path in (
            "/settings/security/2fa",
            "/settings/security/app-passwords",
            "/settings/security/devices",
            "/settings/security/sessions",
            "/settings/security/password",
        ):
            page.goto(path)
            check(page, path.rsplit("/", 1)[1])
        page.goto("/settings/security/app-passwords")
        page.get_by_role("link", name="生成专用密码").click()
        expect(page.locator(DIALOG)).to_be_visible()
        check(page, "app-password-dialog")

        page = fresh_page()
        log_in(page, "administrator@mail.xamd.edu.cn")
        check(page, "second-step")
        pass_second_step(page, people.now())
        for path in ("/admin", "/admin/users?account=lisi@mail.xamd.edu.cn", "/settings/security/2fa"):
            page.goto(path)
            check(page, path.strip("/").split("?")[0].replace("/", "-") or "home")
        page.locator("tr[data-method='totp']").get_by_role("link", name="修改").click()
        expect(page.locator(DIALOG)).to_be_visible()
        check(page, "verify-dialog")
    finally:
        for context in contexts:
            context.close()

    assert {what: issues for what, issues in found.items() if issues} == {}
    assert len(found) == 14
