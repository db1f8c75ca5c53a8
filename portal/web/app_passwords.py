"""客户端专用密码: generate (shown once), list, delete, 全部清除; dialogs are htmx fragments."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request
from flask_babel import gettext as _
from flask_babel import ngettext

from portal.config import parse_mail_servers
from portal.services import app_passwords, step_up
from portal.services.errors import DomainError
from portal.services.step_up import StepUpRequired
from portal.web import step_up as step_up_view
from portal.web.render import page_or_fragment, targets

bp = Blueprint("app_passwords", __name__, url_prefix="/settings/security/app-passwords")
TEMPLATE = "security/app_passwords.html"
# The dialogs of the page, one partial each.
NEW, CREATED, DELETE, CLEAR, DONE, MESSAGE = (
    f"security/app_passwords/_{kind}.html" for kind in ("new", "created", "delete", "clear", "done", "message")
)
CHANGED = "appPasswordsChanged"


@bp.get("")
def index():
    block = "passwords" if targets("passwords") else "content"
    return _render(block)


@bp.get("/new")
def new():
    if step_up.needed(g.login):  # ask before the name is typed, not after
        return step_up_view.ask("app-password")
    return _render("dialog", dialog=NEW)


@bp.post("/new")
def create():
    name = request.form.get("name", "")
    try:
        row, plaintext = app_passwords.issue(g.login, name, g.client)
    except StepUpRequired as exc:
        return step_up_view.ask(exc.action)
    except DomainError as exc:
        return _render("dialog", dialog=NEW, name=name, error=exc.message)
    return _render(
        "dialog",
        trigger=CHANGED,
        dialog=CREATED,
        wide=True,
        created=row,
        plaintext=plaintext,
        groups=app_passwords.grouped(plaintext),
        servers=parse_mail_servers(str(current_app.config["MAIL_SERVERS"])),
    )


# Row ids are 32-bit (PostgreSQL serial); a larger number would overflow SQLite's driver: 404 instead.
@bp.get("/<int(max=2147483647):password_id>/delete")
def delete_form(password_id: int):
    try:
        return _render("dialog", dialog=DELETE, row=app_passwords.get(g.user, password_id))
    except DomainError as exc:
        return _render("dialog", dialog=MESSAGE, error=exc.message)


@bp.post("/<int(max=2147483647):password_id>/delete")
def delete(password_id: int):
    try:
        row = app_passwords.delete(g.user, password_id, g.client)
    except DomainError as exc:
        return _render("dialog", dialog=MESSAGE, error=exc.message)
    return _render("dialog", trigger=CHANGED, dialog=DONE, done=_("已删除专用密码“%(name)s”", name=row.name))


@bp.get("/clear")
def clear_form():
    return _render("dialog", dialog=CLEAR)


@bp.post("/clear")
def clear():
    count = app_passwords.clear(g.user, g.client)
    return _render(
        "dialog",
        trigger=CHANGED,
        dialog=DONE,
        done=ngettext("已清除 %(num)s 个专用密码", "已清除 %(num)s 个专用密码", count),
    )


def _render(block: str, trigger: str | None = None, **context):
    return page_or_fragment(
        TEMPLATE,
        block,
        trigger=trigger,
        rows=app_passwords.listing(g.user),
        required=app_passwords.required(g.user),
        cap=app_passwords.CAP,
        **context,
    )
