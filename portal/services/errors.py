"""Domain errors with stable codes; views turn them into messages or JSON envelopes."""

from __future__ import annotations


class DomainError(Exception):
    """A refused operation: ``code`` is stable, ``message`` is for the user in their language.

    The message is a gettext string: translated where it is raised, or a lazy_gettext constant that
    str() (or rendering) translates in the language of the moment.
    """

    code = "error"
    status = 400

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status


class InvalidInput(DomainError):
    code = "invalid_input"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    status = 401


class InvalidCode(DomainError):
    code = "invalid_code"


class Throttled(DomainError):
    code = "throttled"
    status = 429

    def __init__(self, message: str, retry_after: int, code: str | None = None):
        super().__init__(message, code)
        self.retry_after = retry_after


class NotAllowed(DomainError):
    code = "not_allowed"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class Expired(DomainError):
    code = "expired"
    status = 410


class Unavailable(DomainError):
    """The server cannot finish the operation right now (not the user's fault); nothing was changed."""

    code = "unavailable"
    status = 503


class SecretUnreadable(Unavailable):
    """A secret stored encrypted cannot be decrypted (another PORTAL_DATA_KEY, a damaged row)."""

    code = "secret_unreadable"
