"""A local stand-in for api.weixin.qq.com: cgi-bin/token and sns/jscode2session over real HTTP.

Development and tests point PORTAL_WECHAT_API_BASE here, so every call still goes through
wechatpy and HTTP. Replies follow WeChat's documented shapes and error codes.

A test or simulator plays wx.login() with ``POST /stub/login {"openid": ...}``, which returns a
one-time code. Codes named after an error (``stub-40029``, ``stub-45011``, ``stub-40226``,
``stub--1``) make jscode2session answer with that errcode.
"""

from __future__ import annotations

import secrets
import threading
import time

from flask import Flask, jsonify, request

CODE_TTL = 300
TOKEN_TTL = 7200


def create_stub_app(appid: str, secret: str) -> Flask:
    app = Flask("wechat_stub")
    lock = threading.Lock()
    codes: dict[str, tuple[str, float]] = {}  # code -> (openid, issued)
    used: set[str] = set()
    tokens: dict[str, float] = {}  # access_token -> expiry
    app.config["STUB_STATS"] = stats = {"token": 0, "jscode2session": 0}

    def error(errcode: int, errmsg: str):
        return jsonify(errcode=errcode, errmsg=errmsg)

    @app.get("/cgi-bin/token")
    def token():
        stats["token"] += 1
        if request.args.get("grant_type") != "client_credential":
            return error(40002, "invalid grant_type")
        if request.args.get("appid") != appid:
            return error(40013, "invalid appid")
        if request.args.get("secret") != secret:
            return error(40125, "invalid appsecret")
        value = secrets.token_urlsafe(48)
        with lock:
            tokens[value] = time.time() + TOKEN_TTL
        return jsonify(access_token=value, expires_in=TOKEN_TTL)

    @app.get("/sns/jscode2session")
    def jscode2session():
        stats["jscode2session"] += 1
        if request.args.get("appid") != appid or request.args.get("secret") != secret:
            return error(40125, "invalid appsecret")
        code = request.args.get("js_code", "")
        if code.startswith("stub-"):
            errcode = int(code[5:])
            return error(errcode, {-1: "system error", 45011: "api minute-quota reach limit"}.get(errcode, "error"))
        with lock:
            if code in used:
                return error(40163, "code been used")
            issued = codes.pop(code, None)
            if issued is None or time.time() - issued[1] > CODE_TTL:
                return error(40029, "invalid code")
            used.add(code)
        openid = issued[0]
        return jsonify(openid=openid, session_key=secrets.token_urlsafe(16), unionid=f"union-{openid}")

    @app.post("/stub/login")
    def login():
        """What wx.login() does on a phone: a fresh one-time code for this WeChat user."""
        openid = (request.get_json(silent=True) or {}).get("openid") or ""
        if not openid:
            return jsonify(error="openid required"), 400
        code = secrets.token_urlsafe(16)
        with lock:
            codes[code] = (openid, time.time())
        return jsonify(code=code)

    return app


def request_code(api_base: str, openid: str) -> str:
    """Play wx.login() against the stub: a one-time code for ``openid`` (simulators only)."""
    import requests

    response = requests.post(api_base.rstrip("/") + "/stub/login", json={"openid": openid}, timeout=5)
    response.raise_for_status()
    return response.json()["code"]
