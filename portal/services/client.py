"""Who is asking: the caller's address and user agent, passed into services by the views."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Client:
    ip: str = ""
    user_agent: str = ""
    # The browser's long-lived portal_browser cookie (new device / new place); "" for callers without one.
    # Never audited or stored as it is: new_sign_ins keeps only its HMAC.
    browser: str = field(default="", repr=False)

    @classmethod
    def of(cls, ip: str | None, user_agent: str | None, browser: str | None = None) -> Client:
        return cls(ip=(ip or "")[:64], user_agent=(user_agent or "")[:300], browser=(browser or "")[:128])
