"""Demo data for `make run`: a few accounts to walk the manual's flows with."""

from __future__ import annotations

from portal.models import HardwareToken, User
from portal.services import accounts, hardware_tokens, policy

DEMO_PASSWORD = "Demo-2fa-2026"
DEMO_ACCOUNTS = [
    ("zhangsan@mail.xamd.edu.cn", "张三", "", "no factor yet: bind 第三方 OTP or 微信 under 二次验证设置"),
    ("lisi@mail.xamd.edu.cn", "李四", "", "listed for forced binding: must bind after the password"),
    ("admin@mail.xamd.edu.cn", "管理员", "admin", "admin: always forced to bind; then 管理 (/admin: everything)"),
    ("helpdesk@mail.xamd.edu.cn", "服务台", "helpdesk", "helpdesk: 用户支持 and 临时访问码, no policy"),
    ("auditor@mail.xamd.edu.cn", "审计员", "auditor", "auditor: 统计报表 and 审计日志, read-only"),
]


DEMO_TOKEN = ("DEMO-TOTP-0001", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")  # 动态口令: serial, base32 seed
# 30 days of made-up campus traffic, so that 统计报表 has charts and 用户支持 has people to find.
HISTORY_USERS, HISTORY_EVENTS = 300, 6000


def seed(history: bool = True) -> list[str]:
    """Create the demo accounts if missing (and once, a month of history); enable every method; describe them."""
    policy.set_value("enabled_methods", "app,wechat,totp,email,sms,token,webauthn")
    policy.set_value("force_2fa", "listed")
    lines = [f"Demo accounts (password {DEMO_PASSWORD}):"]
    for account, name, role, note in DEMO_ACCOUNTS:
        if User.by_account(account) is None:
            accounts.create(account, DEMO_PASSWORD, name=name)
            if role:
                accounts.set_role(account, role)
        if account.startswith("lisi@"):
            accounts.set_policy(account, force=True)
        lines.append(f"  {account:28} {note}")
    serial, seed_secret = DEMO_TOKEN
    if HardwareToken.by_serial(serial) is None:
        row = f"{serial},{seed_secret},totp,6,30,0\n"
        hardware_tokens.import_file(f"serial,secret,type,digits,period,counter\n{row}".encode(), fmt="csv")
    lines.append(f"动态口令 demo token: serial {serial}, its code: oathtool --totp -b {seed_secret}")
    lines.append("短信 codes and 备用邮箱 mails are printed here; 安全密钥 needs http://localhost:8000 (not 127.0.0.1)")
    if history:
        from portal.services import demo_large  # it builds on this module's password

        if User.by_account(demo_large.account_name(0)) is None:
            demo_large.seed(HISTORY_USERS, HISTORY_EVENTS, say=lambda _line: None)
        lines.append(f"统计报表 history: {HISTORY_USERS} made-up accounts (e.g. {demo_large.account_name(0)}), 30 days")
    return lines
