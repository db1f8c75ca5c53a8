// 邮箱安全 App simulator: Ed25519 keys in WebCrypto, signed requests to the real /api/app/v1.
(function () {
  "use strict";
  var root = document.getElementById("app-sim");
  if (!root) return;
  var API = "/api/app/v1";
  var STORE = "app-sim-accounts";
  var $ = function (id) { return document.getElementById(id); };
  var enc = new TextEncoder();
  var PURPOSES = { login: "登录", unbind: "解绑验证方式", rebind: "修改验证方式", verify: "安全验证" };

  function b64(bytes) { return btoa(String.fromCharCode.apply(null, new Uint8Array(bytes))); }
  function unb64(text) { return Uint8Array.from(atob(text), function (c) { return c.charCodeAt(0); }); }
  function hex(bytes) {
    return Array.from(new Uint8Array(bytes)).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }
  function accounts() { return JSON.parse(localStorage.getItem(STORE) || "[]"); }
  function save(list) { localStorage.setItem(STORE, JSON.stringify(list)); }

  function send(method, path, body, account) {
    var data = body === undefined ? "" : JSON.stringify(body);
    var headers = body === undefined ? {} : { "Content-Type": "application/json" };
    var signed = account ? sign(account, method, path, data).then(function (extra) {
      Object.assign(headers, extra);
    }) : Promise.resolve();
    return signed.then(function () {
      return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : data });
    }).then(function (response) {
      return response.json().then(function (payload) {
        if (!response.ok) {
          var error = new Error((payload.error && payload.error.message) || response.statusText);
          error.code = payload.error && payload.error.code;
          throw error;
        }
        return payload;
      });
    });
  }

  function sign(account, method, path, data) {
    var timestamp = String(Math.floor(Date.now() / 1000));
    var nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
    return crypto.subtle.digest("SHA-256", enc.encode(data)).then(function (digest) {
      var message = [method, path, timestamp, nonce, hex(digest)].join("\n");
      return crypto.subtle.importKey("pkcs8", unb64(account.key), { name: "Ed25519" }, false, ["sign"])
        .then(function (key) { return crypto.subtle.sign({ name: "Ed25519" }, key, enc.encode(message)); })
        .then(function (signature) {
          return {
            "X-Device-Id": account.device_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": b64(signature)
          };
        });
    });
  }

  function enroll(ticket) {
    var keys;
    return crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]).then(function (pair) {
      keys = pair;
      return Promise.all([
        crypto.subtle.exportKey("raw", pair.publicKey),
        crypto.subtle.exportKey("pkcs8", pair.privateKey),
        crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, enc.encode("enroll\n" + ticket))
      ]);
    }).then(function (parts) {
      return send("POST", API + "/enroll", {
        ticket: ticket, public_key: b64(parts[0]), name: "Simulator", platform: "Browser", proof: b64(parts[2])
      }).then(function (result) {
        var list = accounts().filter(function (a) { return a.account !== result.account; });
        list.push({ account: result.account, device_id: result.device_id, key: b64(parts[1]), secret: result.totp_secret });
        save(list);
        return "绑定成功:" + result.account;
      });
    });
  }

  function scan() {
    var url = $("app-scan-url").value.trim();
    var out = $("app-scan-result");
    var enrollMatch = /\/app\/enroll\/([^/?#]+)/.exec(url);
    var loginMatch = /\/app\/t\/([^/?#]+)/.exec(url);
    var action;
    if (enrollMatch) action = enroll(enrollMatch[1]);
    else if (loginMatch) action = approveScan(loginMatch[1]);
    else { out.textContent = "不是邮箱安全 App 的二维码"; return; }
    out.textContent = "处理中…";
    action.then(function (text) { out.textContent = text; render(); })
      .catch(function (error) { out.textContent = error.message; });
  }

  function approveScan(ticket) {
    var list = accounts();
    if (!list.length) return Promise.reject(new Error("App 中还没有帐号"));
    var trust = $("app-trust").checked;
    var attempt = function (index) {
      if (index >= list.length) return Promise.reject(new Error("该二维码不属于 App 中的帐号"));
      return send("POST", API + "/tickets/" + ticket + "/approve", { trust_device: trust }, list[index])
        .then(function () { return "已确认授权,请回到网页"; })
        .catch(function (error) { return index + 1 < list.length ? attempt(index + 1) : Promise.reject(error); });
    };
    return attempt(0);
  }

  function totp(secret, now) {
    var alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    var bits = "";
    secret.replace(/=+$/, "").toUpperCase().split("").forEach(function (c) {
      bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
    });
    var bytes = new Uint8Array(Math.floor(bits.length / 8));
    for (var i = 0; i < bytes.length; i++) bytes[i] = parseInt(bits.substr(i * 8, 8), 2);
    var counter = new Uint8Array(8);
    var step = Math.floor(now / 30);
    for (var j = 7; j >= 0; j--) { counter[j] = step & 0xff; step = Math.floor(step / 256); }
    return crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-1" }, false, ["sign"])
      .then(function (key) { return crypto.subtle.sign("HMAC", key, counter); })
      .then(function (mac) {
        var h = new Uint8Array(mac);
        var o = h[19] & 0xf;
        var value = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
        return String(value % 1000000).padStart(6, "0");
      });
  }

  function render() {
    var list = accounts();
    var box = $("app-accounts");
    if (!list.length) {
      var none = document.createElement("li");
      none.className = "muted";
      none.textContent = "(暂无帐号,请扫描网页上的绑定二维码)";
      box.replaceChildren(none);
      return;
    }
    var now = Date.now() / 1000;
    Promise.all(list.map(function (a) { return totp(a.secret, now); })).then(function (codes) {
      box.replaceChildren();
      list.forEach(function (account, index) {
        var item = document.createElement("li");
        item.className = "code-row";
        item.dataset.account = account.account;
        var name = document.createElement("span");
        name.className = "muted";
        name.textContent = account.account;
        var code = document.createElement("strong");
        code.className = "code";
        code.dataset.code = codes[index];
        code.textContent = codes[index];
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "link";
        remove.textContent = "解绑";
        remove.addEventListener("click", function () { removeAccount(account); });
        var left = document.createElement("span");
        left.className = "muted";
        left.textContent = (30 - Math.floor(now % 30)) + "s";
        item.append(name, code, remove, left);
        box.appendChild(item);
      });
    });
  }

  function removeAccount(account) {
    send("DELETE", API + "/device", undefined, account).then(function () {
      save(accounts().filter(function (a) { return a.device_id !== account.device_id; }));
      location.reload();
    }).catch(function (error) { $("app-scan-result").textContent = error.message; });
  }

  // The web unbound this device (or the admin reset it): the App forgets the account, as a real App would.
  function forget(account) {
    save(accounts().filter(function (a) { return a.device_id !== account.device_id; }));
    $("app-scan-result").textContent = account.account + " 已在网页上解绑,已从 App 中移除";
    render();
  }

  var shown = null; // the challenges on screen: redrawn only when they change, so a button never moves under a tap
  function poll() {
    var list = accounts();
    Promise.all(list.map(function (account) {
      return send("GET", API + "/challenges", undefined, account)
        .then(function (data) { return data.challenges.map(function (c) { c.owner = account; return c; }); })
        .catch(function (error) { if (error.code === "device_unknown") forget(account); return []; });
    })).then(function (groups) {
      var challenges = [].concat.apply([], groups);
      var key = challenges.map(function (c) { return c.id; }).join(",");
      if (key === shown) return;
      shown = key;
      var box = $("app-challenges");
      box.replaceChildren();
      if (!challenges.length) {
        var none = document.createElement("li");
        none.className = "muted";
        none.textContent = "(暂无)";
        box.appendChild(none);
      }
      challenges.forEach(function (challenge) { box.appendChild(card(challenge)); });
    });
  }

  function card(challenge) {
    var item = document.createElement("li");
    item.className = "challenge";
    item.dataset.challenge = challenge.id;
    var title = document.createElement("strong");
    title.textContent = "确定是否授权:" + (PURPOSES[challenge.purpose] || challenge.purpose);
    var info = document.createElement("p");
    info.className = "muted";
    info.textContent = challenge.account + " · " + challenge.request.browser + " · " + challenge.request.os +
      " · " + challenge.request.ip + " · " + challenge.expires_in + " 秒内有效";
    var hint = document.createElement("p");
    hint.textContent = "您的帐号正在进行操作,请选择网页上显示的数字以确定授权;若非本人操作,请点击“不是本人操作”。";
    var buttons = document.createElement("div");
    buttons.className = "buttons";
    challenge.choices.forEach(function (number) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "btn primary";
      button.dataset.number = number;
      button.textContent = number;
      button.addEventListener("click", function () {
        decide(send("POST", API + "/challenges/" + challenge.id + "/approve", { number: number }, challenge.owner));
      });
      buttons.appendChild(button);
    });
    var deny = document.createElement("button");
    deny.type = "button";
    deny.className = "btn";
    deny.textContent = "不是本人操作";
    deny.addEventListener("click", function () {
      decide(send("POST", API + "/challenges/" + challenge.id + "/deny", { reason: "not_me" }, challenge.owner));
    });
    buttons.appendChild(deny);
    item.append(title, info, hint, buttons);
    return item;
  }

  function decide(request) {
    request.then(function (data) {
      $("app-scan-result").textContent = data.state === "approved" ? "已确认授权" : "已取消授权";
      poll();
    }).catch(function (error) { $("app-scan-result").textContent = error.message; poll(); });
  }

  $("app-scan-go").addEventListener("click", scan);
  if (root.dataset.scan) { $("app-scan-url").value = root.dataset.scan; scan(); }
  render();
  poll();
  setInterval(render, 1000);
  setInterval(poll, 3000);
})();
