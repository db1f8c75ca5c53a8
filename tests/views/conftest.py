"""Fixtures for view tests: per-test app settings, a controllable TOTP clock, extra browsers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from portal.services import accounts, otp
from tests.helpers import Browser
from tests.views.support import TotpClock


def pytest_configure(config):
    config.addinivalue_line("markers", "app_config(**settings): app configuration for this test (views)")


@pytest.fixture
def app_config(app_config, request) -> dict:
    """``@pytest.mark.app_config(KEY=value)`` changes the app's configuration for one test."""
    marker = request.node.get_closest_marker("app_config")
    if marker:
        app_config.update(marker.kwargs)
    return app_config


@pytest.fixture(autouse=True)
def fresh_g_per_request(fresh_g):
    """View tests hold the ``user`` fixture's context open: every request still gets its own ``g``."""
    yield


@pytest.fixture
def clock(monkeypatch) -> TotpClock:
    clock = TotpClock()
    monkeypatch.setattr(otp, "current_step", lambda now=None: clock.step)
    return clock


@pytest.fixture
def new_browser(app) -> Callable[[], Browser]:
    """Another browser (its own cookies)."""
    return lambda: Browser(app.test_client())


@pytest.fixture
def totp_user(user):
    """``user`` with 第三方 OTP offered (admin policy, per user), nothing bound yet."""
    return accounts.set_policy(user.account, methods="totp")
