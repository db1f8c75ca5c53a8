"""Who is asking: the caller's address and user agent, passed into services by the views."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Client:
    ip: str = ""
    user_agent: str = ""

    @classmethod
    def of(cls, ip: str | None, user_agent: str | None) -> Client:
        return cls(ip=(ip or "")[:64], user_agent=(user_agent or "")[:300])
