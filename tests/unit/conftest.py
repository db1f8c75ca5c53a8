"""Fixtures for service and CLI unit tests: a frozen TOTP clock, clients, sessions, threads."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from portal.models import LoginSession
from portal.services import otp, sessions
from portal.services.client import Client
from tests.helpers import run_threads  # noqa: F401 -- the unit tests import it from here

# A fixed instant in the middle of a 30-second step, so that codes never straddle a step boundary.
FROZEN_TIME = 1_750_000_005.0


def pytest_configure(config):
    config.addinivalue_line("markers", "config(**overrides): app configuration overrides for this test")


@pytest.fixture
def app_config(app_config, request) -> dict:
    """``@pytest.mark.config(KEY=value)`` edits the configuration before the app is built."""
    marker = request.node.get_closest_marker("config")
    if marker:
        app_config.update(marker.kwargs)
    return app_config


@dataclass
class Clock:
    """The time the TOTP code checks see; tests move it by whole steps."""

    now: float = FROZEN_TIME

    def time(self) -> float:
        return self.now

    @property
    def step(self) -> int:
        return otp.current_step(self.now)

    def advance(self, steps: int = 1) -> None:
        self.now += steps * otp.PERIOD

    def code(self, secret: str, offset: int = 0) -> str:
        return otp.code_at(secret, self.step + offset)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Freeze the time used by ``portal.services.otp`` (other modules keep the real clock)."""
    frozen = Clock()
    monkeypatch.setattr(otp, "time", frozen)
    return frozen


def wrong_code(secret: str, clock: Clock) -> str:
    """A well-formed code that matches no step in the accepted window."""
    window = {clock.code(secret, k) for k in range(-otp.DRIFT_STEPS, otp.DRIFT_STEPS + 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)


@pytest.fixture
def client() -> Client:
    return Client(ip="203.0.113.7", user_agent="pytest-browser/1.0")


@pytest.fixture
def full_session(ctx, user, client) -> LoginSession:
    """A fully logged-in session of ``user``."""
    token = sessions.start(user, sessions.FULL, client)
    session = sessions.resolve(token)
    assert session is not None
    return session
