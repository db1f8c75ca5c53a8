from tests.helpers import text


def test_healthz(browser):
    response = browser.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_login_page_renders(browser):
    assert "邮箱登录" in text(browser.get("/login"))
