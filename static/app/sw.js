// 邮箱安全 App's service worker (served at /app/sw.js, scope /app): keeps the App's shell for
// offline use (the codes need nothing else), and turns a Web Push into a notification.
//
// A push carries only {"challenge": id}; the worker fetches what it shows over the signed device API.
importScripts("/static/app/core.js");

var CACHE = "mail-security-app-v1";
var SHELL = [
  "/app", "/app/manifest.webmanifest", "/static/app/core.js", "/static/app/app.js", "/static/app/scanner.js",
  "/static/app/app.css", "/static/app/icon.svg", "/static/app/icon-192.png", "/static/app/icon-512.png"
];
var NETWORK_MS = 4000; // a slow network falls back to the cached shell after this
var t = MailSecurityApp.t;

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(SHELL); }).then(function () {
    return self.skipWaiting();
  }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) { return name !== CACHE; }).map(function (name) {
      return caches.delete(name);
    }));
  }).then(function () { return self.clients.claim(); }));
});

// The shell: network first (so an update shows at once), the cache when offline or slow. Every page
// of the App (/app, /app/enroll/…, /app/t/…) is the same shell. The API is never cached.
self.addEventListener("fetch", function (event) {
  var url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  var navigation = event.request.mode === "navigate" && (url.pathname === "/app" || url.pathname.indexOf("/app/") === 0);
  if (!navigation && SHELL.indexOf(url.pathname) < 0) return;
  var key = navigation ? "/app" : url.pathname;
  event.respondWith(fromNetwork(event.request, key).catch(function () {
    return caches.match(key).then(function (cached) { return cached || Response.error(); });
  }));
});

function fromNetwork(request, key) {
  return new Promise(function (resolve, reject) {
    var timer = setTimeout(reject, NETWORK_MS);
    fetch(request).then(function (response) {
      clearTimeout(timer);
      if (!response.ok) return resolve(response); // the portal's own answer (e.g. an error page)
      if (key === new URL(request.url).pathname) { // the shell itself, not an /app/enroll/… page
        var copy = response.clone();
        caches.open(CACHE).then(function (cache) { return cache.put(key, copy); });
      }
      resolve(response);
    }, function (error) { clearTimeout(timer); reject(error); });
  });
}

self.addEventListener("push", function (event) {
  var id = 0;
  try { id = Number((event.data && event.data.json() || {}).challenge) || 0; } catch (ignored) { id = 0; }
  event.waitUntil(speakTheAppsLanguage().then(function () { return describe(id); }).then(function (shown) {
    return self.registration.showNotification(shown.title, {
      body: shown.body, tag: "challenge-" + id, renotify: true, requireInteraction: true,
      icon: "/static/app/icon-192.png", badge: "/static/app/icon-192.png",
      data: { url: id ? "/app?challenge=" + id : "/app" }
    });
  }));
});

// "张三 正在登录邮箱,请确认": the challenge looked up over the signed API; a generic text when the
// portal cannot be reached or the request is already gone.
function describe(id) {
  var generic = { title: t("邮箱安全:有新的授权请求"), body: t("请打开邮箱安全 App 确认") };
  if (!id) return Promise.resolve(generic);
  return MailSecurityApp.pending().then(function (found) {
    var challenge = found.challenges.filter(function (c) { return c.id === id; })[0];
    if (!challenge) return generic;
    var who = challenge.name || challenge.account;
    var where = [challenge.request.place, challenge.request.browser, challenge.request.os, challenge.request.ip]
      .filter(Boolean).join(" · ");
    return {
      title: title(challenge.purpose, who),
      body: challenge.account + (where ? "\n" + where : "") + "\n" + t("打开 App,选择网页上显示的数字以确定授权")
    };
  }).catch(function () { return generic; });
}

// "张三 正在登录邮箱,请确认": one whole sentence per purpose.
function title(purpose, who) {
  var values = { who: who };
  switch (purpose) {
    case "login": return t("{who} 正在登录邮箱,请确认", values);
    case "unbind": return t("{who} 正在解绑验证方式,请确认", values);
    case "rebind": return t("{who} 正在修改验证方式,请确认", values);
    case "verify": return t("{who} 正在进行安全验证,请确认", values);
    default: return t("{who} 正在操作,请确认", values);
  }
}

// The notification speaks the App's language: the messages block (portal/web/app_messages.py) of the
// shell this worker cached, i.e. the App as the phone last opened it; Chinese when there is none yet.
function speakTheAppsLanguage() {
  return caches.match("/app").then(function (shell) { return shell ? shell.text() : ""; }).then(function (html) {
    var found = /<script type="application\/json" id="app-messages">([^<]*)<\/script>/.exec(html);
    MailSecurityApp.useMessages(found ? JSON.parse(found[1]) : {});
  }).catch(function () { MailSecurityApp.useMessages({}); });
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = new URL(event.notification.data && event.notification.data.url || "/app", self.location.origin).href;
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
    var open = windows.filter(function (w) { return new URL(w.url).pathname.indexOf("/app") === 0; })[0];
    if (!open) return self.clients.openWindow(target);
    open.postMessage({ open: target }); // the App shows that request; focus() needs this click
    return open.focus();
  }));
});

// The browser rotated the subscription: subscribe again with the same server key and tell the portal.
self.addEventListener("pushsubscriptionchange", function (event) {
  event.waitUntil(MailSecurityApp.pushKey().then(function (key) {
    if (!key) return null;
    return self.registration.pushManager.subscribe({
      userVisibleOnly: true, applicationServerKey: MailSecurityApp.unb64url(key)
    }).then(MailSecurityApp.registerPush);
  }).catch(function () { return null; })); // the App registers it again when it next opens
});
