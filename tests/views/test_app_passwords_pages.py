"""客户端专用密码 (/settings/security/app-passwords): generate once-visible passwords, list, delete, 全部清除."""

from __future__ import annotations

import html
import re

import pytest

from portal.models import AppPassword, AuditEvent, LoginSession
from portal.services import accounts, app_passwords
from portal.services.client import Client
from tests.conftest import PASSWORD
from tests.helpers import Browser, text
from tests.views.support import complete_login, dialog_tag, is_fragment, location

PAGE = "/settings/security/app-passwords"
NEW = f"{PAGE}/new"
CHANGED = "appPasswordsChanged"
NOTES = [
    "客户端专用密码是用于登录第三方邮件客户端",
    "请在客户端原密码框中输入专用密码进行登录",
    "适合客户端通过以下协议使用:POP、IMAP、SMTP",
    "“客户端专用密码”仅在生成时可见,支持设置多个",
]
SERVERS = "imap=imap.xamd.edu.cn:993:143,pop3=pop.xamd.edu.cn:995:110,smtp=smtp.xamd.edu.cn:994:25"
APP_PASSWORD_RE = re.compile(r'<code class="secret" data-app-password="([^"]*)">(.*?)</code>', re.S)


@pytest.fixture
def logged_in(browser, user) -> Browser:
    """A full session of ``user`` (no second factor bound, no forced binding)."""
    browser.login(user.account, PASSWORD)
    return browser


def created_password(response) -> str:
    """The password of a 生成 dialog: the data-app-password element's attribute and its text (tags removed)."""
    match = APP_PASSWORD_RE.search(text(response))
    assert match, text(response)
    attribute, inner = match.group(1), re.sub(r"<[^>]+>", "", match.group(2))
    assert attribute == inner
    return attribute


def generate(browser: Browser, name: str = "Foxmail", htmx: bool = True):
    return browser.post(NEW, {"name": name}, htmx=htmx)


def row_names(response) -> list[str]:
    return [html.unescape(n) for n in re.findall(r"<tr data-app-password-id=\"\d+\">\s*<td>(.*?)</td>", text(response))]


# --- reaching the page ------------------------------------------------------------------------


def test_reached_from_twofa_settings_security_settings_and_the_side_nav(logged_in):
    twofa = text(logged_in.get("/settings/security/2fa"))
    tip = twofa.split("温馨提示", 1)[1].split("</div>", 1)[0]
    assert f'href="{PAGE}">设置客户端专用密码</a>' in tip  # 方案一
    security = text(logged_in.get("/settings/security"))
    assert "客户端安全登录" in security and f'href="{PAGE}"' in security  # 方案二
    page = logged_in.get(PAGE)
    assert page.status_code == 200 and f'<a href="{PAGE}" aria-current="page">客户端专用密码</a>' in text(page)


def test_empty_page(logged_in):
    body = text(logged_in.get(PAGE))
    for label in ("生成专用密码", "密码名称", "使用时间", "创建时间", "操作", "(暂无)"):
        assert label in body
    assert "全部清除" not in body  # nothing to clear
    assert "绑定二次验证后,必须使用专用密码登录" in body


def test_the_page_says_when_app_passwords_are_required(browser, user, totp_secret, clock):
    complete_login(browser, user.account, totp_secret, clock)
    assert "第三方客户端必须使用专用密码登录" in text(browser.get(PAGE))


def test_needs_a_full_session(browser, user, totp_secret):
    browser.login(user.account, PASSWORD)  # password only: the second step is pending
    for response in (browser.get(PAGE), browser.post(NEW, {"name": "x"})):
        assert location(response) == "/login/verify"
    assert AppPassword.select().count() == 0


# --- 生成专用密码 -------------------------------------------------------------------------------


def test_new_dialog_is_a_fragment_with_the_manuals_notes(logged_in):
    response = logged_in.get(NEW, htmx=True)
    assert response.status_code == 200 and is_fragment(response)
    body = text(response)
    assert all(note in body for note in NOTES)
    assert 'name="name"' in body and 'maxlength="32"' in body and "请输入密码名称" in body and "生成" in body
    assert " open" not in dialog_tag(response)


def test_new_dialog_without_javascript_is_the_whole_page_with_the_dialog_open(logged_in):
    response = logged_in.get(NEW)
    assert "<html" in text(response) and " open" in dialog_tag(response) and NOTES[0] in text(response)


@pytest.mark.app_config(MAIL_SERVERS=SERVERS)
def test_generate_shows_the_password_once_with_the_server_settings(logged_in, user):
    response = generate(logged_in)
    assert response.status_code == 200 and is_fragment(response)
    assert response.headers["HX-Trigger"] == CHANGED
    plaintext = created_password(response)
    assert len(plaintext) == 16 and plaintext.isascii() and plaintext.isalnum()
    body = text(response)
    assert "".join(f"<span>{group}</span>" for group in app_passwords.grouped(plaintext)) in body  # groups of four
    assert f'data-copy="{plaintext}">复制</button>' in body and "完成" in body
    assert "专用密码 <strong>Foxmail</strong>" in body and "仅在生成时可见" in body
    assert user.account in body
    for label, host, ports in (
        ("收信服务器 (IMAP)", "imap.xamd.edu.cn", "SSL 端口: 993, 非 SSL 端口: 143"),
        ("收信服务器 (POP3)", "pop.xamd.edu.cn", "SSL 端口: 995, 非 SSL 端口: 110"),
        ("发信服务器 (SMTP)", "smtp.xamd.edu.cn", "SSL 端口: 994, 非 SSL 端口: 25"),
    ):
        assert label in body and host in body and ports in body
    (row,) = AppPassword.select()
    assert row.name == "Foxmail" and row.secret_hash != plaintext and plaintext not in str(row.__data__)
    assert app_passwords.authenticate(user.account, plaintext, "imap", "192.0.2.1").ok


def test_the_password_is_nowhere_after_done_or_reload(logged_in):
    plaintext = created_password(generate(logged_in))
    for response in (
        logged_in.get(PAGE),  # 完成 without JavaScript, or a reload
        logged_in.get(PAGE, htmx=True, HX_Target="passwords"),  # the table refreshed by HX-Trigger
        logged_in.get(PAGE, htmx=True),
    ):
        assert response.status_code == 200
        assert plaintext not in text(response) and "data-app-password=" not in text(response)
        assert row_names(response) == ["Foxmail"]


def test_generate_without_javascript(logged_in):
    response = generate(logged_in, htmx=False)
    assert "<html" in text(response) and " open" in dialog_tag(response)
    assert len(created_password(response)) == 16 and row_names(response) == ["Foxmail"]


def test_table_refresh_returns_only_the_table(logged_in):
    generate(logged_in, "Outlook")
    response = logged_in.get(PAGE, htmx=True, HX_Target="passwords")
    assert text(response).lstrip().startswith('<div id="passwords"') and row_names(response) == ["Outlook"]
    assert "全部清除" in text(response) and "暂无</td>" in text(response)  # never used yet


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "请输入密码名称"),
        ("   ", "请输入密码名称"),
        ("x" * 33, "不能超过 32 个字符"),
        ("tab\there", "不能包含控制字符"),
        ("rtl\u202eoverride", "不能包含控制字符"),
    ],
)
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_bad_names_re_render_the_dialog(logged_in, name, message, htmx):
    response = generate(logged_in, name, htmx=htmx)
    assert response.status_code == 200 and message in text(response)
    assert is_fragment(response) == htmx and "HX-Trigger" not in response.headers
    assert 'name="name"' in text(response) and "data-app-password" not in text(response)
    assert AppPassword.select().count() == 0


def test_nul_in_a_name_is_a_clear_error_not_a_500(logged_in):
    response = generate(logged_in, "nul\x00name")
    assert response.status_code in (200, 400) and AppPassword.select().count() == 0


def test_duplicate_name(logged_in):
    generate(logged_in, "iPhone")
    response = generate(logged_in, "iPhone")
    assert "已有同名的专用密码" in text(response) and AppPassword.select().count() == 1


def test_the_cap_has_a_clear_message(logged_in, user):
    for i in range(app_passwords.CAP):
        app_passwords.create(user, f"client {i}", Client())
    response = generate(logged_in, "one more")
    assert response.status_code == 200 and "最多可设置 20 个客户端专用密码" in text(response)
    assert AppPassword.select().count() == app_passwords.CAP


# --- 使用时间 -----------------------------------------------------------------------------------


def test_last_use_shows_time_protocol_and_ip(logged_in, user):
    plaintext = created_password(generate(logged_in))
    assert "暂无</td>" in text(logged_in.get(PAGE))
    assert app_passwords.authenticate(user.account, plaintext, "pop3", "192.0.2.33").ok
    body = text(logged_in.get(PAGE))
    assert "POP3 · 192.0.2.33" in body and "暂无</td>" not in body


# --- 删除 and 全部清除 ----------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_delete_asks_then_deletes(logged_in, user, htmx):
    plaintext = created_password(generate(logged_in, "Foxmail"))
    generate(logged_in, "Outlook")
    row = AppPassword.get(AppPassword.name == "Foxmail")
    confirm = logged_in.get(f"{PAGE}/{row.id}/delete", htmx=htmx)
    assert "确定删除专用密码“Foxmail”" in text(confirm) and is_fragment(confirm) == htmx
    assert AppPassword.select().count() == 2
    done = logged_in.post(f"{PAGE}/{row.id}/delete", htmx=htmx)
    assert done.status_code == 200 and "已删除专用密码“Foxmail”" in text(done)
    assert done.headers.get("HX-Trigger") == CHANGED
    assert [r.name for r in AppPassword.select()] == ["Outlook"]
    assert not app_passwords.authenticate(user.account, plaintext, "imap", "").ok
    event = AuditEvent.get(AuditEvent.event == "app_password_deleted")
    assert event.user_id == user.id and event.ip == "127.0.0.1"


def test_deleting_someone_elses_or_a_missing_password_is_a_message(logged_in):
    bob = accounts.create("bob@mail.xamd.edu.cn", PASSWORD)
    row, _ = app_passwords.create(bob, "bob's", Client())
    for url in (f"{PAGE}/{row.id}/delete", f"{PAGE}/999999/delete"):
        for response in (logged_in.get(url, htmx=True), logged_in.post(url, htmx=True)):
            assert response.status_code == 200 and "不存在或已删除" in text(response)
            assert "HX-Trigger" not in response.headers
    assert AppPassword.select().count() == 1
    assert logged_in.post(f"{PAGE}/99999999999/delete").status_code in (404, 405)


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_clear_all_asks_then_clears(logged_in, user, htmx):
    for name in ("a", "b", "c"):
        generate(logged_in, name)
    confirm = logged_in.get(f"{PAGE}/clear", htmx=htmx)
    assert "确定清除全部 3 个专用密码" in text(confirm)
    done = logged_in.post(f"{PAGE}/clear", htmx=htmx)
    assert "已清除 3 个专用密码" in text(done) and done.headers.get("HX-Trigger") == CHANGED
    assert AppPassword.select().count() == 0
    assert AuditEvent.get(AuditEvent.event == "app_passwords_cleared").detail == "3 app password(s)"
    assert "(暂无)" in text(logged_in.get(PAGE))


def test_changes_need_the_csrf_token(logged_in):
    response = logged_in.post(NEW, {"name": "x", "csrf_token": "forged"})
    assert response.status_code == 400 and AppPassword.select().count() == 0


# --- app passwords never open a web session (invariant 12) ------------------------------------


@pytest.mark.parametrize("bound", [False, True], ids=["no-factor", "2fa"])
def test_the_web_login_refuses_app_passwords(request, new_browser, user, bound):
    if bound:
        request.getfixturevalue("totp_secret")
    _, plaintext = app_passwords.create(user, "Foxmail", Client())
    browser = new_browser()
    response = browser.login(user.account, plaintext)
    assert response.status_code == 401 and "账号或密码错误" in text(response)
    assert LoginSession.select().count() == 0 and browser.cookie("portal_sid") is None
    grouped = " ".join(app_passwords.grouped(plaintext))
    assert browser.login(user.account, grouped).status_code == 401
