// Mini-program simulator: drives the real /api/wx/v1 JSON API as the WeChat mini-program would.
(function () {
  "use strict";
  var API = "/api/wx/v1";
  var root = document.getElementById("miniprogram");
  if (!root) return;
  var token = null;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  var $ = function (id) { return document.getElementById(id); };

  var TITLES = { login: "登录确认", bind: "绑定邮箱", unbind: "解绑确认", rebind: "换绑确认", verify: "安全验证" };
  var PROMPTS = {
    login: "该邮箱帐号正在以下浏览器登录,请确认是否本人操作。",
    bind: "网页请求将该邮箱帐号绑定到当前微信,绑定后可在此扫码登录或查看验证码。",
    unbind: "网页请求解除该邮箱帐号与当前微信的绑定,请确认是否本人操作。",
    rebind: "网页请求将该邮箱帐号改绑到其他微信,请确认是否本人操作。",
    verify: "网页在生成专用密码、清除信任设备或绑定新的验证方式前请求验证身份,请确认是否本人操作。"
  };
  var LABELS = {
    approve_trust: "确认授权并信任此设备",
    approve_once: "临时登录",
    confirm: "确认",
    deny: "拒绝"
  };

  // A token ends when what it rested on goes (e.g. the account unbound): like the real mini-program,
  // sign in again with a new wx.login() code and retry the call once.
  function call(method, path, body, retried) {
    var headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    return fetch(API + path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined })
      .then(function (response) {
        return response.json().then(function (data) {
          var expired = response.status === 401 && data.error && data.error.code === "invalid_token";
          if (expired && token && !retried) {
            return signIn($("openid").value.trim()).then(function () { return call(method, path, body, true); });
          }
          if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
          return data;
        });
      });
  }

  function signIn(openid) {
    return fetch("/dev/miniprogram/wx-login", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ openid: openid })
    })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (!data.code) throw new Error((data.error && data.error.message) || "wx.login 失败");
        token = null;
        return call("POST", "/session", { code: data.code });
      })
      .then(function (data) { token = data.token; });
  }

  function login() {
    var openid = $("openid").value.trim();
    $("wx-status").textContent = "登录中…";
    signIn(openid)
      .then(function () {
        localStorage.setItem("wx-openid", openid);
        $("wx-status").textContent = "已登录:" + openid;
        $("wx-accounts-section").hidden = false;
        $("wx-scan-section").hidden = false;
        refresh();
        if (root.dataset.scan) {  // opened from a QR's 在小程序模拟器中打开 link: scan it once
          $("scan-url").value = root.dataset.scan;
          root.dataset.scan = "";
          scan();
        }
      })
      .catch(function (error) { $("wx-status").textContent = "登录失败:" + error.message; });
  }

  var timer = null;
  function refresh() {
    call("GET", "/accounts").then(function (data) {
      var list = $("wx-accounts");
      list.replaceChildren();
      if (!data.accounts.length) {
        var empty = document.createElement("li");
        empty.textContent = "(暂无绑定的邮箱,请在网页上选择微信绑定并扫码)";
        list.appendChild(empty);
      }
      data.accounts.forEach(function (account) {
        var item = document.createElement("li");
        item.className = "code-row";
        item.dataset.account = account.account;
        var name = document.createElement("span");
        name.className = "muted";
        name.textContent = account.account;
        var code = document.createElement("strong");
        code.className = "code";
        code.dataset.code = account.code;
        code.textContent = account.code;
        var copy = document.createElement("button");
        copy.type = "button";
        copy.className = "link";
        copy.dataset.copy = account.code;
        copy.textContent = "复制";
        var left = document.createElement("span");
        left.className = "muted";
        left.dataset.left = "";
        item.append(name, code, copy, left);
        list.appendChild(item);
      });
      var wait = data.accounts.length ? data.accounts[0].remaining : 30;
      nextCodeAt = Date.now() + Math.max(1, wait) * 1000;
      tick();
      clearTimeout(timer);
      timer = setTimeout(refresh, Math.max(1, wait) * 1000);
    }).catch(function (error) { $("wx-status").textContent = error.message; });
  }

  // The seconds each code has left, counted down on the phone between refreshes.
  var nextCodeAt = 0;
  function tick() {
    var left = Math.max(0, Math.ceil((nextCodeAt - Date.now()) / 1000)) + "s";
    document.querySelectorAll("#wx-accounts [data-left]").forEach(function (span) { span.textContent = left; });
  }
  setInterval(tick, 1000);

  function ticketOf(url) {
    var match = /\/wx\/t\/([^/?#]+)/.exec(url);
    return match ? match[1] : null;
  }

  function scan() {
    var ticket = ticketOf($("scan-url").value.trim());
    $("scan-result").textContent = "";
    $("ticket").hidden = true;
    $("ticket-hints").hidden = true;
    if (!ticket) { $("scan-result").textContent = "不是邮箱安全助手的二维码"; return; }
    call("GET", "/tickets/" + ticket).then(function (data) {
      $("ticket-title").textContent = TITLES[data.purpose] || data.purpose;
      $("ticket-prompt").textContent = PROMPTS[data.purpose] || "";
      $("ticket-hints").hidden = data.purpose !== "login";
      var facts = $("ticket-facts");
      facts.replaceChildren();
      [["帐号", data.account], ["IP", data.request.ip], ["浏览器", data.request.browser],
        ["系统", data.request.os], ["时间", new Date(data.request.time).toLocaleString("zh-CN")],
        ["有效期", data.expires_in + " 秒"]].forEach(function (pair) {
        var dt = document.createElement("dt"); dt.textContent = pair[0];
        var dd = document.createElement("dd"); dd.textContent = pair[1];
        facts.append(dt, dd);
      });
      var choices = $("ticket-choices");
      choices.replaceChildren();
      data.choices.forEach(function (choice) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = choice === "deny" ? "btn" : "btn primary";
        button.textContent = LABELS[choice];
        button.addEventListener("click", function () { decide(ticket, choice); });
        choices.appendChild(button);
      });
      $("ticket").hidden = false;
      $("ticket").scrollIntoView({ block: "nearest" });
    }).catch(function (error) { $("scan-result").textContent = error.message; });
  }

  function decide(ticket, choice) {
    var request;
    if (choice === "approve_trust") request = call("POST", "/tickets/" + ticket + "/approve", { trust_device: true });
    else if (choice === "approve_once") request = call("POST", "/tickets/" + ticket + "/approve", { trust_device: false });
    else if (choice === "confirm") request = call("POST", "/tickets/" + ticket + "/confirm");
    else request = call("POST", "/tickets/" + ticket + "/deny");
    request.then(function (data) {
      $("ticket").hidden = true;
      $("scan-result").textContent = data.state === "approved" ? "已确认,请回到网页" : "已拒绝";
      refresh();
    }).catch(function (error) { $("scan-result").textContent = error.message; });
  }

  $("openid").value = localStorage.getItem("wx-openid") || $("openid").value;
  $("wx-login").addEventListener("click", login);
  $("scan-go").addEventListener("click", scan);
  $("wx-refresh").addEventListener("click", refresh);
})();
