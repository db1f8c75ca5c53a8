"""策略 (/admin/policy): the global policy as one grouped form, saved all together or not at all.

Only admins (roles.POLICY). Each change is audited with its old and new value (policy.update); the
values live in the database, so every worker applies them from the next request on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import g, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from portal.services import policy, policy_values, roles
from portal.services.factors import METHODS
from portal.web.admin import bp, requires
from portal.web.render import page_or_fragment

TEMPLATE = "admin/policy.html"
ON_OFF = {"off": _l("关闭"), "on": _l("开启")}


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    kind: str  # methods (checkboxes), choice (radios), number, date, lines (one entry a line), text
    hint: str
    options: dict = field(default_factory=dict)  # choice: value -> label
    limits: tuple[int, int] | None = None  # number: min, max


def _number(key: str, label: str, hint: str) -> Field:
    return Field(key, label, "number", hint, limits=policy_values.RANGES[key])


GROUPS = [
    (
        _l("验证方式"),
        [
            Field(
                "enabled_methods",
                _l("向用户提供的验证方式"),
                "methods",
                _l("用户可以自行绑定的方式;个别用户可在用户支持页面另行开通。"),
            ),
            Field("admin_methods", _l("管理人员可用的验证方式"), "methods", _l("都不选表示不限,例如只选“安全密钥”。")),
            Field(
                "mail_requires_app_password",
                _l("邮件客户端只接受专用密码"),
                "choice",
                _l("开启后,未绑定二次验证的用户登录 IMAP/POP3/SMTP 也只能使用客户端专用密码。"),
                ON_OFF,
            ),
        ],
    ),
    (
        _l("强制绑定"),
        [
            Field(
                "force_2fa",
                _l("强制绑定二次验证"),
                "choice",
                _l("被要求的用户输入密码后须先绑定才能进入邮箱;管理人员始终须绑定。"),
                {"off": _l("关闭"), "all": _l("所有用户"), "listed": _l("指定用户(在用户支持页面设置)")},
            ),
            Field(
                "force_2fa_deadline",
                _l("绑定截止日期"),
                "date",
                _l("北京时间,含当天;截止前用户可以选择“稍后绑定”。留空表示不限日期。"),
            ),
            _number(
                "force_2fa_snoozes",
                _l("“稍后绑定”次数"),
                _l("每个用户最多可推迟几次(0–20);0 表示必须立即绑定。管理人员不能推迟。"),
            ),
        ],
    ),
    (
        _l("信任网络与设备"),
        [
            Field(
                "trusted_networks",
                _l("可信网络"),
                "lines",
                _l(
                    "每行一个网段(CIDR,如 10.0.0.0/8);从这些网络登录无需二次验证(管理人员除外)。IPv4 最大 /8,IPv6 最大 /32。"  # noqa: E501
                ),
            ),
            Field(
                "campus_networks",
                _l("网段名称"),
                "lines",
                _l("每行“网段 名称”,如 10.0.0.0/8 校园网;登录记录中以该名称显示地点。"),
            ),
            _number("trusted_device_days", _l("信任设备有效期(天)"), _l("1–90 天;之后新信任的设备按此期限失效。")),
            Field(
                "risk_step_up",
                _l("异地登录需二次验证"),
                "choice",
                _l("开启后,从新的省份或国家登录时,信任设备也要二次验证。"),
                ON_OFF,
            ),
        ],
    ),
    (
        _l("锁定"),
        [
            _number(
                "lockout_account_failures",
                _l("每个账号的失败次数"),
                _l("3–50;统计时长内失败达到此次数即锁定到时段结束。每个账号每小时最多 100 次。"),
            ),
            _number("lockout_ip_failures", _l("每个 IP 的失败次数"), _l("不少于每个账号的失败次数。")),
            _number("lockout_window_minutes", _l("统计时长(分钟)"), _l("5–60 分钟;修改后从新的时段重新计数。")),
        ],
    ),
    (
        _l("安全验证"),
        [
            _number(
                "step_up_minutes",
                _l("安全验证有效期(分钟)"),
                _l("1–60 分钟;生成专用密码、绑定其他方式、管理操作等之前,最近一次二次验证须在此时间内,否则重新验证。"),
            ),
        ],
    ),
    (
        _l("支持联系方式"),
        [Field("support_contact", _l("支持联系方式"), "text", _l("显示在页面底部和提示中,最多 200 个字符。"))],
    ),
]
FIELDS = [item for _label, items in GROUPS for item in items]


@bp.get("/policy")
@requires(roles.POLICY)
def policy_page():
    return _page(policy.current())


@bp.post("/policy")
@requires(roles.POLICY)
def policy_save():
    submitted = _submitted(request.form)
    try:
        changed = policy.update(submitted, by=g.user, client=g.client)
    except policy.PolicyInvalid as exc:
        return _page({**policy.current(), **submitted}, status=exc.status, error=exc.message, errors=exc.errors)
    notice = _("已保存 %(count)s 项修改,立即生效", count=len(changed)) if changed else _("没有修改")
    return _page(policy.current(), notice=notice)


def _submitted(form: MultiDict) -> dict[str, str]:
    """The fields the form sent (a field it did not send stays as it is)."""
    values = {}
    for item in FIELDS:
        if item.key not in form:
            continue
        if item.kind == "methods":  # checkboxes beside an empty hidden input of the same name
            values[item.key] = ",".join(value for value in form.getlist(item.key) if value)
        else:
            values[item.key] = form.get(item.key, "")
    return values


def _shown(item: Field, value: str) -> str | list[str]:
    """A stored value as its input shows it."""
    if item.kind == "methods":
        return [method for method in value.split(",") if method]
    if item.kind == "lines":  # trusted_networks: "a,b"; campus_networks: "a 名称; b 名称"
        separator = ";" if item.key == "campus_networks" else ","
        return "\n".join(part.strip() for part in value.replace(separator, "\n").splitlines() if part.strip())
    return value


def _page(values: dict[str, str], status: int = 200, **context):
    shown = {item.key: _shown(item, values[item.key]) for item in FIELDS}
    methods = [(key, method.label) for key, method in METHODS.items()]
    # A method set ahead of an upgrade (not in this release) stays listed, so that saving keeps it.
    chosen = {key for item in FIELDS if item.kind == "methods" for key in shown[item.key]}
    methods += [(key, key) for key in sorted(chosen - set(METHODS))]
    context.setdefault("errors", {})
    return page_or_fragment(TEMPLATE, "policy", status, groups=GROUPS, values=shown, methods=methods, **context)
