"""Backend of the 邮箱安全助手 mini-program: the JSON API at /api/wx/v1 (see openapi.yaml)."""

from wechat_backend.api import blueprint

__all__ = ["blueprint"]
