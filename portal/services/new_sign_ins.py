"""New device / new place (异地登录提醒, issue #14 item 4) on a completed web login, and risk step-up.

A device is new when the browser came without a live trusted-device cookie and its ``portal_browser``
cookie (stored only as an HMAC) has not completed a login of this account in 90 days. A place is new when
its region (the province in China, the country abroad; 内网 and unknown addresses are no place) has not
been seen for this account in 90 days. What is new is audited as ``sign_in_new_device`` /
``sign_in_new_place`` (the notice mailer mails those); an account's very first login mails nothing, as
there is nothing to compare with, but is remembered like any other.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from portal import crypto
from portal.models import SeenSignIn, User, utcnow
from portal.services import audit, places, policy
from portal.services.client import Client

LOOKBACK = timedelta(days=90)
DEVICE, REGION = "device", "region"


def place_is_new(user: User, client: Client, now: datetime | None = None) -> bool:
    """Is this login's region one the account has not signed in from lately (False without history)?"""
    region = places.place_of(client.ip).region
    return bool(region) and _has_history(user) and not _seen(user, REGION, region, now or utcnow())


def steps_up(user: User, client: Client) -> bool:
    """Risk step-up: a new place asks the second step even on a trusted device (policy risk_step_up;
    admins always)."""
    if not (user.is_staff or policy.get("risk_step_up") == "on"):
        return False
    return place_is_new(user, client)


def observe(user: User, client: Client, trusted_device: bool = False, now: datetime | None = None) -> None:
    """A web login of ``user`` completed: audit what is new about it, then remember its browser and region.

    Runs in the login's transaction (the notices are queued with it).
    """
    now = now or utcnow()
    place = places.place_of(client.ip)
    device = crypto.token_hash(client.browser) if client.browser else ""
    history = _has_history(user)
    new_device = history and not trusted_device and not (device and _seen(user, DEVICE, device, now))
    new_place = history and bool(place.region) and not _seen(user, REGION, place.region, now)
    for kind, value in ((DEVICE, device), (REGION, place.region)):
        if value:
            _remember(user, kind, value, now)
    if new_device:
        audit.record("sign_in_new_device", user=user, client=client, detail=place.label)
    if new_place:
        audit.record("sign_in_new_place", user=user, client=client, detail=place.label)


def _has_history(user: User) -> bool:
    return SeenSignIn.select().where(SeenSignIn.user == user).exists()


def _seen(user: User, kind: str, value: str, now: datetime) -> bool:
    row = SeenSignIn.select().where(
        (SeenSignIn.user == user)
        & (SeenSignIn.kind == kind)
        & (SeenSignIn.value == value)
        & (SeenSignIn.last_at >= now - LOOKBACK)
    )
    return row.exists()


def _remember(user: User, kind: str, value: str, now: datetime) -> None:
    SeenSignIn.insert(user=user, kind=kind, value=value[:64], first_at=now, last_at=now).on_conflict(
        conflict_target=[SeenSignIn.user, SeenSignIn.kind, SeenSignIn.value],
        update={SeenSignIn.last_at: now},
    ).execute()
