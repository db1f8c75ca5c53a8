"""Security notices by mail (DESIGN §5), derived from the audit trail: one outbox row per recipient.

``audit.record`` hands every new event to ``enqueue``; the events of NOTICES that name a user become
a mail to the account and to its 备用邮箱, written in the event's transaction and sent later by
``outbox.drain`` (never inside the request, invariant 16).
"""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import crypto, i18n
from portal.models import AuditEvent, Factor, MailOutbox, User
from portal.services import mailer, outbox, places, throttle, useragent
from portal.services.errors import SecretUnreadable
from portal.timezone import local

BACKUP_EMAIL = "email"  # the 备用邮箱 method (portal.services.factors.email imports the audit trail)
ANY = "*"  # an outcome recorded by several events (不是本人操作)

# (event, outcome) → the notice's first sentence; %(label)s is the method's name. One whole sentence per
# event, so that each translates as a whole.
NOTICES = {
    ("factor_bound", "ok"): _l("您的帐号绑定了 %(label)s"),
    ("factor_changed", "ok"): _l("您的帐号修改了 %(label)s"),
    ("factor_unbound", "ok"): _l("您的帐号解绑了 %(label)s"),
    ("security_key_added", "ok"): _l("您的帐号添加了一个安全密钥"),
    ("security_key_removed", "ok"): _l("您的帐号删除了一个安全密钥"),
    ("app_password_created", "ok"): _l("您的帐号创建了客户端专用密码"),
    ("trusted_device_added", "ok"): _l("您的帐号新增了信任设备(此设备登录时免二次验证)"),
    ("recovery_code_used", "ok"): _l("您的帐号使用了一个备用码登录"),
    ("temporary_code_issued", "ok"): _l("网络信息化中心为您的帐号签发了一个临时访问码"),
    ("temporary_code_used", "ok"): _l("您的帐号使用临时访问码通过了二次验证"),
    ("locked_out", "locked"): _l("您的帐号因多次验证失败被暂时锁定"),
    ("2fa_reset", "ok"): _l("您的帐号的二次验证已被管理员重置"),
    ("password_changed", "ok"): _l("您的帐号的密码已修改"),
    ("sign_in_new_device", "ok"): _l("您的帐号在新设备上登录"),
    ("sign_in_new_place", "ok"): _l("您的帐号在新的地点登录(异地登录提醒)"),
    (ANY, "not_me"): _l("您的帐号的一次登录请求被标记为“不是本人操作”"),
}
SUBJECT = _l("【邮箱安全】%(what)s")
BODY = _l(
    """%(what)s。

帐号:%(account)s
时间:%(time)s(北京时间)
IP:%(ip)s
地点:%(place)s
浏览器:%(browser)s
系统:%(system)s

如非本人操作,请立即打开 %(url)s 保护帐号(退出所有设备、修改密码、检查二次验证设置)。

%(org)s
"""
)
SECURE_PATH = "/settings/security/secure"  # 保护帐号: after a fresh login, one step ends every session


def notice_for(event: AuditEvent) -> str | None:
    """What the mail says happened, or None for an event that mails nothing."""
    what = NOTICES.get((event.event, event.outcome)) or NOTICES.get((ANY, event.outcome))
    if what is None or event.user_id is None:
        return None
    if event.event == "locked_out" and not event.detail.endswith(":acct"):
        return None  # only the account's own lock, not its client IP's
    from portal.services.factors import METHODS  # the factor modules audit: imported late

    method = METHODS.get(event.method)
    return str(what) % {"label": method.label if method else event.method}


def enqueue(event: AuditEvent) -> None:
    """Write this event's notices to the outbox: once per recipient, however often it is handed in."""
    what = notice_for(event)
    if what is None or not mailer.available():
        return
    user = User.get_by_id(event.user_id)
    with i18n.speaking(i18n.of(user)):  # the account's language, whoever's request this is
        what = notice_for(event)
        subject, body = str(SUBJECT) % {"what": what}, _body(event, user, what)
    key = _dedup_key(event)
    rows = [
        {"recipient": to, "subject": subject, "body": body, "dedup_key": f"{key}:{to}"[:320]} for to in recipients(user)
    ]
    MailOutbox.insert_many(rows).on_conflict_ignore().execute()
    outbox.wake()


def recipients(user: User) -> list[str]:
    """The account's address and, when bound, its 备用邮箱."""
    addresses = [user.account]
    factor = Factor.of(user, BACKUP_EMAIL)
    if factor is not None:
        try:
            addresses.append(crypto.decrypt(factor.secret))
        except SecretUnreadable:  # a wrong data key: the account's own address still hears of it
            pass
    return list(dict.fromkeys(addresses))


def _dedup_key(event: AuditEvent) -> str:
    if event.event == "locked_out":  # every refused attempt is audited: one notice per lock window
        window, _ = throttle.current_window(event.created_at)
        return f"locked:{event.user_id}:{window:%Y%m%d%H%M}"
    return f"audit:{event.id}"


def _body(event: AuditEvent, user: User, what: str) -> str:
    browser, system = useragent.describe(event.user_agent)
    return str(BODY) % {
        "what": what,
        "account": user.account,
        "time": local(event.created_at, "%Y-%m-%d %H:%M:%S"),
        "ip": event.ip or _("未知"),
        "place": places.place_of(event.ip).label,
        "browser": browser,
        "system": system,
        "url": str(current_app.config["PUBLIC_URL"]).rstrip("/") + SECURE_PATH,
        "org": current_app.config["ORG_NAME"],
    }
