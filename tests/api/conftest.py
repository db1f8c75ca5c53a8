"""Fixtures for the mini-program API: the WeChat stub over HTTP and a portal that calls it."""

from __future__ import annotations

import pytest

from portal.services import accounts
from tests.api.support import STUB_APPID, STUB_SECRET, Phone, wechat_stub  # noqa: F401 -- a fixture
from tests.conftest import PASSWORD, make_config


@pytest.fixture
def app_config(database_url, wechat_stub) -> dict:
    """The portal talks to the stub through wechatpy over real HTTP."""
    return make_config(
        database_url, WECHAT_APPID=STUB_APPID, WECHAT_SECRET=STUB_SECRET, WECHAT_API_BASE=wechat_stub.base
    )


@pytest.fixture
def phone(app, wechat_stub) -> Phone:
    return Phone(app.test_client(), wechat_stub)


@pytest.fixture
def wx_login(phone):
    """``wx_login(openid)``: wx.login() on the stub, then POST /session; the bearer token."""
    return phone.login


@pytest.fixture
def bob(ctx):
    return accounts.create("bob@mail.xamd.edu.cn", PASSWORD, name="Bob")


@pytest.fixture
def owner(ctx, user, phone, wx_login):
    """alice has bound 微信: the bearer token of the WeChat user holding it ("o-owner")."""
    token = wx_login("o-owner")
    phone.bind(token, user)
    return token
