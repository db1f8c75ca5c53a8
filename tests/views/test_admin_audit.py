"""/admin/audit 审计日志: filters, 加载更多 (htmx keyset pages), CSV export, and who may open it."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pyotp
import pytest

from portal import crypto
from portal.models import AuditEvent, Factor
from portal.services import accounts, audit_search
from tests.conftest import PASSWORD
from tests.helpers import text
from tests.views.support import complete_login, location

T0 = datetime(2026, 9, 1, 0, 0, 0)  # UTC


def add(account="lisi@mail.xamd.edu.cn", event="login_complete", outcome="ok", ip="202.117.0.5", at=T0, **more):
    return AuditEvent.create(account=account, event=event, outcome=outcome, ip=ip, created_at=at, **more)


@pytest.fixture
def staff(ctx, new_browser, clock):
    """A browser signed in (password and 第三方 OTP) as an account with the given console role."""

    def sign_in(role: str):
        account = f"{role or 'plain'}@mail.xamd.edu.cn"
        user = accounts.create(account, PASSWORD)
        if role:
            accounts.set_role(account, role)
        secret = pyotp.random_base32()
        Factor.create(user=user, method="totp", secret=crypto.encrypt(secret))
        browser = new_browser()
        complete_login(browser, account, secret, clock)
        return browser

    return sign_in


@pytest.fixture
def auditor(staff):
    return staff("auditor")


def row_ids(response) -> list[int]:
    return [int(n) for n in re.findall(r'data-event-id="(\d+)"', text(response))]


def more_link(response) -> str | None:
    match = re.search(r'id="audit-more".*?hx-get="([^"]+)"', text(response), re.S)
    return match.group(1).replace("&amp;", "&") if match else None


def read_csv(response) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


# --- who may open it ---


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_may_read_the_audit_log(staff, role):
    browser = staff(role)
    page = browser.get("/admin/audit")
    assert page.status_code == 200 and "审计日志" in text(page)
    assert browser.get("/admin/audit?format=csv").status_code == 200
    assert 'href="/admin/audit"' in text(page)  # the side navigation offers it


def test_helpdesk_and_users_may_not(staff):
    add()
    for browser, message in ((staff("helpdesk"), "您的角色无权访问此页面"), (staff(""), "仅管理员可以访问此页面")):
        assert browser.get("/admin/audit").status_code == 403
        csv_response = browser.get("/admin/audit?format=csv")
        assert csv_response.status_code == 403 and csv_response.mimetype == "text/html"
        more = browser.get(f"/admin/audit?cursor={2**60}.{2**60}", htmx=True)  # htmx: the refusal as a flash
        assert more.headers.get("HX-Retarget") == "#flash" and message in text(more)
        assert "data-event-id" not in text(more)


def test_signed_out_visitors_are_sent_to_the_login(new_browser):
    assert location(new_browser().get("/admin/audit?format=csv")) == "/login"


# --- the page and its filters ---


def test_the_page_shows_events_with_chinese_labels(auditor):
    add(event="locked_out", outcome="locked", method="totp", detail="5 次失败", account="wang@mail.xamd.edu.cn")
    page = text(auditor.get("/admin/audit?account=wang"))
    row = re.search(r'<tr data-event-id="\d+">(.*?)</tr>', page, re.S).group(1)
    assert "wang@mail.xamd.edu.cn" in row and "锁定" in row and "第三方 OTP" in row and "5 次失败" in row
    assert "2026-09-01 08:00:00" in row  # Beijing time
    assert "locked_out" not in re.sub(r'title="[^"]*"', "", row)  # the code only as a tooltip


def test_filters_narrow_the_list_and_stay_in_the_form(auditor):
    wanted = add(account="lisi@mail.xamd.edu.cn", event="login_password", outcome="fail", ip="202.117.3.4")
    add(account="lisi@mail.xamd.edu.cn", event="login_password", outcome="ok", ip="202.117.3.4")
    add(account="lisi@mail.xamd.edu.cn", event="login_password", outcome="fail", ip="10.0.0.1")
    add(account="lisi@mail.xamd.edu.cn", event="login_password", outcome="fail", at=T0 - timedelta(days=2))
    add(account="wang@mail.xamd.edu.cn", event="login_password", outcome="fail", ip="202.117.3.4")
    query = "account=lisi&event=login_password&outcome=fail&ip=202.117.0.0/16&since=2026-09-01&until=2026-09-01"
    page = auditor.get("/admin/audit?" + query)
    assert row_ids(page) == [wanted.id]
    body = text(page)
    assert 'name="account" type="search" value="lisi"' in body and 'value="202.117.0.0/16"' in body
    assert '<option value="login_password" selected>' in body and '<option value="fail" selected>' in body
    csv_link = re.search(r'href="([^"]+)" data-csv', body).group(1).replace("&amp;", "&")
    assert "format=csv" in csv_link and "ip=202.117.0.0/16" in csv_link and "until=2026-09-01" in csv_link
    assert [line[1] for line in read_csv(auditor.get(csv_link))[1:]] == ["lisi@mail.xamd.edu.cn"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("ip=202.117.0.300", "ip", "请输入 IP 地址或网段"),
        ("since=yesterday", "since", "请输入日期"),
        ("since=2026-09-02&until=2026-09-01", "until", "结束时间早于开始时间"),
        ("event=%3Cscript%3E", "event", "事件类型无效"),
        ("cursor=abc", "cursor", "翻页位置无效"),
        ("format=csv&ip=10.0.0.0/40", "ip", "请输入 IP 地址或网段"),
    ],
)
def test_bad_filters_show_the_form_with_a_message(auditor, query, field, message):
    add()
    response = auditor.get("/admin/audit?" + query)
    assert response.status_code == 200 and response.mimetype == "text/html"
    body = text(response)
    assert re.search(rf'data-error="{field}">[^<]*{message}', body), body
    assert row_ids(response) == [] and 'name="ip"' in body
    assert "<script>" not in body


def test_no_match_says_so(auditor):
    assert "没有符合条件的记录" in text(auditor.get("/admin/audit?account=nobody"))


# --- 加载更多 ---


def test_load_more_appends_the_next_page_by_htmx_until_the_end(auditor, monkeypatch):
    monkeypatch.setattr(audit_search, "PAGE_SIZE", 3)
    rows = [add(account=f"u{n}@x.cn", outcome="fail", at=T0 + timedelta(seconds=n)) for n in range(8)]
    add(outcome="ok", at=T0 + timedelta(seconds=99))  # filtered out
    first = auditor.get("/admin/audit?outcome=fail")
    seen = row_ids(first)
    link = more_link(first)
    assert "outcome=fail" in link and "cursor=" in link
    pages = 1
    while link:
        fragment = auditor.get(link, htmx=True)
        assert fragment.status_code == 200 and "<html" not in text(fragment) and "<table" not in text(fragment)
        assert text(fragment).lstrip().startswith("<tr")
        seen += row_ids(fragment)
        link = more_link(fragment)
        pages += 1
    assert seen == [row.id for row in reversed(rows)] and pages == 3


def test_load_more_without_javascript_opens_the_next_page(auditor, monkeypatch):
    monkeypatch.setattr(audit_search, "PAGE_SIZE", 2)
    rows = [add(at=T0 + timedelta(seconds=n)) for n in range(3)]
    first = auditor.get("/admin/audit?account=lisi")
    href = re.search(r'id="audit-more".*?href="([^"]+)"', text(first), re.S).group(1).replace("&amp;", "&")
    second = auditor.get(href)
    assert "<html" in text(second) and row_ids(second) == [rows[0].id] and "account=lisi" in href


# --- CSV ---


def test_the_csv_has_a_bom_labels_and_neutralised_formulas(auditor):
    add(account="=cmd|' /C calc'!A0@x.cn", event="login_password", outcome="fail", detail="+SUM(A1)", method="totp")
    add(account="lisi@mail.xamd.edu.cn", detail="@evil", user_agent="-Mozilla", at=T0 - timedelta(hours=1))
    response = auditor.get("/admin/audit?format=csv&until=2026-09-30")  # not this test's own login
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="audit-\d{8}-\d{4}\.csv"', response.headers["Content-Disposition"])
    lines = read_csv(response)
    assert lines[0][:6] == ["时间(北京时间)", "账号", "事件", "事件代码", "方式", "结果"]
    newest = lines[1]
    assert newest[:3] == ["2026-09-01 08:00:00", "'=cmd|' /C calc'!A0@x.cn", "登录:密码验证"]
    assert newest[3:6] == ["login_password", "第三方 OTP", "失败"]
    assert newest[-1] == "'+SUM(A1)"
    assert lines[2][-1] == "'@evil" and lines[2][-2] == "'-Mozilla"
    assert len(lines) == 3


def test_the_csv_is_streamed_in_batches(auditor, monkeypatch):
    monkeypatch.setattr(audit_search, "EXPORT_BATCH", 4)
    for n in range(10):
        add(account=f"u{n}@x.cn", event="mail_login", at=T0 + timedelta(seconds=n))
    response = auditor.client.get("/admin/audit?format=csv&event=mail_login", buffered=False)
    assert response.is_streamed
    chunks = [chunk.decode() for chunk in response.response]
    response.close()
    assert len(chunks) == 11  # the header, then one chunk per row as it is read
    rows = list(csv.reader(io.StringIO("".join(chunks).removeprefix("\ufeff"))))
    assert [row[1] for row in rows[1:]] == [f"u{n}@x.cn" for n in reversed(range(10))]


def test_an_export_is_itself_audited(auditor):
    response = auditor.get("/admin/audit?format=csv&account=lisi&outcome=fail")
    assert response.status_code == 200
    event = AuditEvent.select().where(AuditEvent.event == "audit_exported").get()
    assert event.account == "auditor@mail.xamd.edu.cn"
    assert event.detail == "by auditor@mail.xamd.edu.cn; account=lisi outcome=fail"
    assert "导出审计日志" in text(auditor.get("/admin/audit?event=audit_exported"))


def test_a_bad_cursor_from_htmx_answers_in_the_load_more_row(auditor):
    response = auditor.get("/admin/audit?cursor=abc", htmx=True)
    body = text(response).strip()
    assert response.status_code == 200 and body.startswith('<tr id="audit-more">') and "翻页位置无效" in body
