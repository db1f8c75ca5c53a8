// 邮箱安全 App: the screens (授权请求 and 二次验证 codes, 扫一扫, 确定绑定, 扫码登录, 移除) over core.js.
(function () {
  "use strict";
  var App = window.MailSecurityApp;
  var root = document.getElementById("app");
  if (!root || !App) return;
  var $ = function (id) { return document.getElementById(id); };
  var simulator = root.dataset.simulator === "1";
  var t = App.t;
  // "确定是否授权:登录": one whole title per purpose (an unknown one shows its code).
  var TITLES = {
    login: t("确定是否授权:登录"), unbind: t("确定是否授权:解绑验证方式"), rebind: t("确定是否授权:修改验证方式"),
    verify: t("确定是否授权:安全验证")
  };
  function title(purpose) { return TITLES[purpose] || t("确定是否授权:{purpose}", { purpose: purpose }); }
  var POLL_MS = 3000;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "class") node.className = attrs[name];
      else if (name.indexOf("on") === 0) node.addEventListener(name.slice(2), attrs[name]);
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function say(text) { $("app-status").textContent = text || ""; }
  function failed(error) { say(error && error.message ? error.message : String(error)); }

  // --- screens -------------------------------------------------------------------------------
  var current = "home";
  var stopCamera = null;
  function show(name) {
    current = name;
    document.querySelectorAll("[data-screen]").forEach(function (screen) { screen.hidden = screen.dataset.screen !== name; });
    root.querySelector(".bar .back").hidden = name === "home";
    closeMenu();
    if (stopCamera && name !== "scan") { stopCamera(); stopCamera = null; }
    window.scrollTo(0, 0);
  }
  function closeMenu() { $("app-menu").hidden = true; $("app-add").setAttribute("aria-expanded", "false"); }
  $("app-add").addEventListener("click", function () {
    var open = $("app-menu").hidden;
    $("app-menu").hidden = !open;
    $("app-add").setAttribute("aria-expanded", String(open));
  });
  root.addEventListener("click", function (event) {
    var go = event.target.closest("[data-go]");
    if (!go) return;
    if (go.dataset.go === "scan") openScan();
    else show(go.dataset.go);
  });

  // --- 二次验证: the accounts and their codes -------------------------------------------------
  var listed = null; // device ids on screen, so rows are rebuilt only when the accounts change
  function renderAccounts() {
    return App.accounts().then(function (list) {
      var box = $("app-accounts");
      var key = list.map(function (a) { return a.device_id; }).join(",");
      if (key !== listed) {
        listed = key;
        box.replaceChildren();
        if (!list.length) box.appendChild(el("li", { class: "empty", text: t("(暂无帐号,请点击“+”选择“扫一扫”,扫描网页上的绑定二维码)") }));
        list.forEach(function (account) { box.appendChild(accountRow(account)); });
        setUpPush();
      }
      return tick(list);
    });
  }
  function accountRow(account) {
    var code = el("strong", { class: "code", "data-code": "" });
    return el("li", { class: "code-row", "data-account": account.account }, [
      el("span", { class: "who" }, [
        account.name ? el("span", { class: "name", text: account.name }) : null,
        el("span", { class: "account", text: account.account })
      ]),
      code,
      el("span", { class: "remaining", "aria-label": t("剩余时间") }),
      el("span", { class: "row-actions" }, [
        el("button", { type: "button", class: "link", text: t("复制"), onclick: function () { copy(code.dataset.code); } }),
        el("button", { type: "button", class: "link danger", text: t("移除"), onclick: function () { askRemove(account); } })
      ])
    ]);
  }
  function tick(list) {
    var now = Date.now() / 1000;
    return Promise.all(list.map(function (account) {
      return App.code(account, now).then(function (value) {
        var row = $("app-accounts").querySelector('[data-account="' + CSS.escape(account.account) + '"]');
        if (!row) return;
        var code = row.querySelector(".code");
        if (code.dataset.code !== value) { code.dataset.code = value; code.textContent = value; }
        row.querySelector(".remaining").textContent = (account.period - Math.floor(now % account.period)) + "s";
      });
    }));
  }
  function copy(value) {
    if (!value) return;
    navigator.clipboard.writeText(value).then(function () { say(t("已复制验证码")); }, function () { say(t("无法复制,请手动输入验证码")); });
  }

  // --- 移除 ---------------------------------------------------------------------------------
  var removing = null;
  function askRemove(account) {
    removing = account;
    $("app-remove-account").textContent = account.account;
    $("app-remove").showModal();
  }
  $("app-remove").addEventListener("close", function () {
    var account = removing;
    removing = null;
    if (!account || $("app-remove").returnValue !== "remove") return;
    App.call("DELETE", "/device", undefined, account).catch(function (error) {
      if (error.code !== "device_unknown") throw error; // already removed on the web: forget it here too
    }).then(function () { return App.forget(account); }).then(function () {
      say(t("已移除 {account}", { account: account.account }));
      return renderAccounts();
    }).catch(failed);
  });

  // --- 授权请求: pushes with number matching ------------------------------------------------
  var shown = null; // the challenges on screen: redrawn only when they change, so a button never moves under a tap
  var focusId = Number(new URLSearchParams(location.search).get("challenge")) || 0;
  function poll() {
    return App.pending().then(function (found) {
      $("app-offline").hidden = !found.offline;
      found.removed.forEach(function (account) { say(t("{account} 已在网页上解绑,已从 App 中移除", { account: account.account })); });
      if (found.removed.length) renderAccounts();
      var key = found.challenges.map(function (c) { return c.id; }).join(",");
      if (key !== shown) {
        shown = key;
        var box = $("app-challenges");
        box.replaceChildren();
        if (!found.challenges.length) box.appendChild(el("li", { class: "empty", text: t("(暂无)") }));
        found.challenges.forEach(function (challenge) { box.appendChild(card(challenge)); });
      }
      if (focusId) {
        var wanted = $("app-challenges").querySelector('[data-challenge="' + focusId + '"]');
        if (wanted) { show("home"); wanted.classList.add("focus"); wanted.scrollIntoView({ block: "center" }); focusId = 0; }
      }
    });
  }
  // 地点 / 浏览器 / 系统 / IP / 时间 of the browser asking, as a list of terms (the ones it has).
  function facts(account, request) {
    var when = request.time ? new Date(request.time) : null;
    var rows = [[t("帐号"), account], [t("地点"), request.place], [t("浏览器"), request.browser], [t("系统"), request.os],
      ["IP", request.ip], [t("时间"), when && !isNaN(when) ? when.toLocaleString(App.language(), { hour12: false }) : request.time]];
    return el("dl", { class: "facts" }, [].concat.apply([], rows.filter(function (r) { return r[1]; }).map(function (r) {
      return [el("dt", { text: r[0] }), el("dd", { text: r[1] })];
    })));
  }
  function card(challenge) {
    var picked = null;
    var approve = el("button", { type: "button", class: "btn primary", text: t("确定授权"), disabled: "" });
    var numbers = challenge.choices.map(function (number) {
      return el("button", {
        type: "button", class: "number", "data-number": String(number), "aria-pressed": "false", text: String(number),
        onclick: function (event) {
          picked = number;
          numbers.forEach(function (b) { b.setAttribute("aria-pressed", String(b === event.currentTarget)); });
          approve.disabled = false;
        }
      });
    });
    approve.addEventListener("click", function () {
      if (picked !== null) decide(challenge, "/approve", { number: picked });
    });
    var who = challenge.name ? challenge.name + "(" + challenge.account + ")" : challenge.account;
    return el("li", { class: "challenge", "data-challenge": String(challenge.id) }, [
      el("strong", { class: "title", text: title(challenge.purpose) }),
      facts(who, challenge.request),
      el("p", { class: "hint", text: t("{seconds} 秒内有效", { seconds: challenge.expires_in }) }),
      el("p", { class: "hint", text: t("您的帐号正在进行操作,请选择网页上显示的数字,再点击“确定授权”;若非本人操作,请点击“不是本人操作”。") }),
      el("div", { class: "numbers", role: "group", "aria-label": t("网页上显示的数字") }, numbers),
      el("div", { class: "buttons" }, [
        approve,
        el("button", { type: "button", class: "btn", text: t("取消授权"), onclick: function () { decide(challenge, "/deny", { reason: "declined" }); } }),
        el("button", { type: "button", class: "btn danger", text: t("不是本人操作"), onclick: function () { decide(challenge, "/deny", { reason: "not_me" }); } })
      ])
    ]);
  }
  function decide(challenge, action, body) {
    App.call("POST", "/challenges/" + challenge.id + action, body, challenge.owner).then(function (data) {
      say(data.state === "approved" ? t("已确认授权") : t("已取消授权"));
    }, failed).then(poll);
  }

  // --- 扫一扫 --------------------------------------------------------------------------------
  function openScan() {
    show("scan");
    $("app-scan-url").value = "";
    if (simulator) { $("app-camera-status").textContent = t("开发模拟器:把网页二维码的链接粘贴到下面"); return; }
    $("app-camera-status").textContent = t("正在打开摄像头…");
    window.QrScanner.start($("app-camera"), function (text) {
      var link = App.parseLink(text);
      if (!link) { $("app-camera-status").textContent = t("不是邮箱安全 App 的二维码"); return false; }
      follow(link);
      return true;
    }).then(function (stop) {
      if (current !== "scan") { stop(); return; }
      stopCamera = stop;
      $("app-camera-status").textContent = t("请将网页上的二维码放入框内");
    }, function () {
      $("app-camera-status").textContent = t("无法使用摄像头:请允许使用摄像头,或把二维码链接粘贴到下面");
    });
  }
  $("app-scan-go").addEventListener("click", function () {
    var link = App.parseLink($("app-scan-url").value.trim());
    if (!link) { say(t("不是邮箱安全 App 的二维码")); return; }
    follow(link);
  });
  function follow(link) {
    say("");
    if (link.kind === "enroll") askEnroll(link.ticket);
    else openTicket(link.ticket);
  }

  // --- 确定绑定 ------------------------------------------------------------------------------
  var enrolling = "";
  function platform() {
    var ua = navigator.userAgent;
    if (/iPhone|iPad|iPod/.test(ua)) return "iOS";
    if (/Android/.test(ua)) return "Android";
    if (/Windows/.test(ua)) return "Windows";
    if (/Mac OS X/.test(ua)) return "macOS";
    return /Linux/.test(ua) ? "Linux" : "Browser";
  }
  function askEnroll(ticket) {
    enrolling = ticket;
    var os = platform();
    $("app-device-name").value = simulator ? "Simulator" : os === "iOS" ? "iPhone" : os === "Android" ? t("手机") : t("浏览器");
    show("enroll");
  }
  $("app-enroll-go").addEventListener("click", function () {
    var button = $("app-enroll-go");
    button.disabled = true;
    say(t("正在绑定…"));
    App.enroll(enrolling, $("app-device-name").value.trim() || t("邮箱安全 App"), simulator ? "Browser" : platform())
      .then(function (account) {
        show("home");
        say(t("绑定成功:{account}", { account: account.account }));
        return renderAccounts();
      }, failed).finally(function () { button.disabled = false; });
  });

  // --- 扫码登录 (a login, 解绑 or 修改 QR) -------------------------------------------------------
  function openTicket(ticket) {
    App.accounts().then(function (list) {
      if (!list.length) throw new Error(t("App 中还没有帐号,请先扫描网页上的绑定二维码"));
      // The QR names no account: ask with each account's key until one of them owns it.
      var attempt = function (index) {
        return App.call("GET", "/tickets/" + ticket, undefined, list[index]).then(function (preview) {
          return { preview: preview, account: list[index] };
        }, function (error) {
          if (error.code === "not_bound_to_you" && index + 1 < list.length) return attempt(index + 1);
          throw error.code === "not_bound_to_you" ? new Error(t("该二维码不属于 App 中的帐号")) : error;
        });
      };
      return attempt(0);
    }).then(function (found) { showTicket(ticket, found.preview, found.account); }, failed);
  }
  function showTicket(ticket, preview, account) {
    var login = preview.purpose === "login";
    $("app-ticket-title").textContent = login ? t("扫码登录") : title(preview.purpose);
    var list = facts(preview.account, preview.request);
    list.id = "app-ticket-facts";
    $("app-ticket-facts").replaceWith(list);
    function approve(trust) {
      App.call("POST", "/tickets/" + ticket + "/approve", { trust_device: trust }, account).then(function () {
        show("home");
        say(t("已确认授权,请回到网页"));
      }, failed);
    }
    var buttons = login ? [
      el("button", { type: "button", class: "btn primary", text: t("确认授权并信任此设备"), onclick: function () { approve(true); } }),
      el("button", { type: "button", class: "btn", text: t("临时登录"), onclick: function () { approve(false); } })
    ] : [el("button", { type: "button", class: "btn primary", text: t("确定授权"), onclick: function () { approve(false); } })];
    buttons.push(el("button", { type: "button", class: "btn", text: t("取消"), "data-go": "home" }));
    $("app-ticket-buttons").replaceChildren.apply($("app-ticket-buttons"), buttons);
    show("ticket");
  }

  // --- notifications (Web Push); without them the App polls while it is open --------------------
  function standalone() { return window.matchMedia("(display-mode: standalone)").matches || navigator.standalone === true; }
  function notify(text, offer) {
    $("app-notify").hidden = false;
    $("app-notify-text").textContent = text;
    $("app-notify-on").hidden = !offer;
  }
  function setUpPush() {
    App.accounts().then(function (list) {
      if (!list.length) { $("app-notify").hidden = true; return; }
      if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
        notify(platform() === "iOS" && !standalone() ? t("iPhone 需先把 App 添加到主屏幕才能接收通知;现在 App 打开时会自动检查授权请求。")
          : t("此浏览器不支持通知:App 打开时会自动检查授权请求。"), false);
        return;
      }
      if (Notification.permission === "denied") {
        notify(t("通知已关闭,可在浏览器设置中开启;App 打开时会自动检查授权请求。"), false);
        return;
      }
      if (Notification.permission === "default") {
        notify(t("开启通知后,登录邮箱时本机会收到授权提醒。"), true);
        return;
      }
      subscribe();
    });
  }
  function subscribe() {
    return App.pushKey().then(function (key) {
      if (!key) { notify(t("服务器未开启通知推送:App 打开时会自动检查授权请求。"), false); return null; }
      var serverKey = App.unb64url(key);
      return navigator.serviceWorker.ready.then(function (registration) {
        var fresh = function () { return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey }); };
        return registration.pushManager.getSubscription().then(function (existing) {
          if (!existing) return fresh();
          if (sameKey(existing.options.applicationServerKey, serverKey)) return existing;
          return existing.unsubscribe().then(fresh); // the portal's VAPID key changed: the old one is useless
        });
      }).then(App.registerPush).then(function () { notify(t("通知已开启:登录邮箱时本机会收到授权提醒。"), false); });
    }).catch(function (error) {
      notify(t("暂时无法开启通知({error}):App 打开时会自动检查授权请求。", { error: error.message || error.name }), false);
    });
  }
  function sameKey(buffer, bytes) {
    var have = new Uint8Array(buffer || []);
    return have.length === bytes.length && have.every(function (b, i) { return b === bytes[i]; });
  }
  $("app-notify-on").addEventListener("click", function () {
    Notification.requestPermission().then(function (permission) {
      if (permission === "granted") subscribe(); else setUpPush();
    });
  });

  // --- install -------------------------------------------------------------------------------
  var installPrompt = null;
  window.addEventListener("beforeinstallprompt", function (event) {
    event.preventDefault();
    installPrompt = event;
    $("app-install").hidden = false;
    $("app-install-go").hidden = false;
  });
  $("app-install-go").addEventListener("click", function () {
    if (!installPrompt) return;
    installPrompt.prompt();
    installPrompt.userChoice.finally(function () { installPrompt = null; $("app-install").hidden = true; });
  });
  if (platform() === "iOS" && !standalone()) {
    $("app-install").hidden = false;
    $("app-install-text").textContent = t("在 Safari 中点击“分享”,选择“添加到主屏幕”,即可像普通 App 一样使用并接收通知。");
  }

  // --- start ---------------------------------------------------------------------------------
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(root.dataset.worker, { scope: "/app" }).catch(function () { /* no offline copy */ });
    navigator.serviceWorker.addEventListener("message", function (event) {
      var target = event.data && event.data.open;
      if (!target) return;
      focusId = Number(new URL(target, location.href).searchParams.get("challenge")) || 0;
      poll();
    });
  }
  var opened = App.parseLink(simulator ? root.dataset.scan : location.pathname);
  if (!simulator && opened) history.replaceState(null, "", "/app"); // a reload shows the App, not the QR again
  renderAccounts().then(function () { if (opened) follow(opened); });
  poll();
  setInterval(function () { if (document.visibilityState === "visible") { renderAccounts(); } }, 1000);
  setInterval(function () { if (document.visibilityState === "visible") poll(); }, POLL_MS);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") poll(); });
})();
