// 邮箱安全 App, shared by its page and its service worker (importScripts): the accounts kept in
// IndexedDB, device keys and signatures (WebCrypto), the signed device API, 6-digit codes.
//
// Each account holds its own device key, generated here as non-extractable (Ed25519 where the browser
// has it, ECDSA P-256 otherwise), so no script can read it back. The TOTP seed is stored encrypted
// under one non-extractable AES-GCM key of this App. Clearing the site's data removes both.
(function (root) {
  "use strict";
  var API = "/api/app/v1";
  var DB_NAME = "mail-security-app";
  var TIMEOUT_MS = 10000; // every call to the portal gives up after this
  var enc = new TextEncoder();
  var dec = new TextDecoder();

  function b64(bytes) {
    var text = "";
    new Uint8Array(bytes).forEach(function (b) { text += String.fromCharCode(b); });
    return btoa(text);
  }
  function unb64url(text) {
    var plain = text.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(plain + "===".slice((plain.length + 3) % 4)), function (c) { return c.charCodeAt(0); });
  }
  function hex(bytes) {
    return Array.from(new Uint8Array(bytes)).map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // --- the page's language -------------------------------------------------------------------
  // t("已移除 {account}", {account: a}): the text of a Chinese key in the page's language, from the
  // shell's <script type="application/json" id="app-messages"> (portal/web/app_messages.py); the key
  // itself when it has none. The service worker has no document: it hands the block over (useMessages).
  var messages = null;
  function catalog() {
    if (messages === null) {
      messages = {};
      var block = root.document && root.document.getElementById("app-messages");
      try { if (block) messages = JSON.parse(block.textContent) || {}; } catch (ignored) { messages = {}; }
    }
    return messages;
  }
  function useMessages(found) { messages = found && typeof found === "object" ? found : {}; }
  function t(key, values) {
    var text = Object.prototype.hasOwnProperty.call(catalog(), key) ? catalog()[key] : key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined && values[name] !== null ? String(values[name]) : whole;
    });
  }
  function language() { return root.document && root.document.documentElement.lang || "zh-CN"; }

  // --- IndexedDB: "accounts" (by device_id) and "keys" (the seed key) ------------------------------
  var opened = null;
  function database() {
    if (!opened) {
      opened = new Promise(function (resolve, reject) {
        var request = indexedDB.open(DB_NAME, 1);
        request.onupgradeneeded = function () {
          request.result.createObjectStore("accounts", { keyPath: "device_id" });
          request.result.createObjectStore("keys");
        };
        request.onsuccess = function () { resolve(request.result); };
        request.onerror = function () { opened = null; reject(request.error); };
      });
    }
    return opened;
  }
  function store(name, mode, work) {
    return database().then(function (db) {
      return new Promise(function (resolve, reject) {
        var transaction = db.transaction(name, mode);
        var result = work(transaction.objectStore(name));
        transaction.oncomplete = function () { resolve(result && "result" in result ? result.result : result); };
        transaction.onerror = function () { reject(transaction.error); };
        transaction.onabort = function () { reject(transaction.error); };
      });
    });
  }

  function accounts() {
    return store("accounts", "readonly", function (s) { return s.getAll(); }).then(function (list) {
      return list.sort(function (a, b) { return a.added_at - b.added_at; });
    });
  }
  function saveAccount(account) { return store("accounts", "readwrite", function (s) { s.put(account); }); }
  function forget(account) { return store("accounts", "readwrite", function (s) { s.delete(account.device_id); }); }

  // --- keys ------------------------------------------------------------------------------------
  function seedKey() {
    return store("keys", "readonly", function (s) { return s.get("seed"); }).then(function (key) {
      if (key) return key;
      return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"])
        .then(function (created) {
          return store("keys", "readwrite", function (s) { s.add(created, "seed"); }).then(function () { return created; })
            .catch(function () { return seedKey(); }); // another tab stored one first: use that
        });
    });
  }
  function sealSeed(secret) {
    var iv = crypto.getRandomValues(new Uint8Array(12));
    return seedKey().then(function (key) { return crypto.subtle.encrypt({ name: "AES-GCM", iv: iv }, key, enc.encode(secret)); })
      .then(function (data) { return { iv: iv, data: data }; });
  }
  function openSeed(sealed) {
    return seedKey().then(function (key) { return crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.iv }, key, sealed.data); })
      .then(function (plain) { return dec.decode(plain); });
  }

  var ALGORITHMS = {
    Ed25519: { generate: { name: "Ed25519" }, sign: { name: "Ed25519" } },
    ES256: { generate: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } }
  };
  // A new device key: Ed25519 where WebCrypto has it (probed by signing once), else ECDSA P-256.
  function newDeviceKey() {
    function make(algorithm) {
      return crypto.subtle.generateKey(ALGORITHMS[algorithm].generate, false, ["sign", "verify"]).then(function (pair) {
        return crypto.subtle.sign(ALGORITHMS[algorithm].sign, pair.privateKey, enc.encode("probe")).then(function () {
          return crypto.subtle.exportKey("raw", pair.publicKey);
        }).then(function (raw) { return { algorithm: algorithm, privateKey: pair.privateKey, publicKey: b64(raw) }; });
      });
    }
    return make("Ed25519").catch(function () { return make("ES256"); });
  }
  function sign(account, text) {
    return crypto.subtle.sign(ALGORITHMS[account.algorithm].sign, account.privateKey, enc.encode(text)).then(b64);
  }

  // --- the device API --------------------------------------------------------------------------
  function ApiError(message, code, status) {
    var error = new Error(message);
    error.code = code || "";
    error.status = status || 0;
    return error;
  }
  // One call: signed by ``account`` unless it is null (enrollment, the push key). Network failures
  // and timeouts become code "offline"; the portal's JSON errors keep their code and message.
  function call(method, path, body, account) {
    var url = API + path;
    var data = body === undefined ? "" : JSON.stringify(body);
    var headers = body === undefined ? {} : { "Content-Type": "application/json" };
    var signing = account ? signedHeaders(account, method, url, data) : Promise.resolve({});
    return signing.then(function (signed) {
      var controller = new AbortController();
      var timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
      return fetch(url, {
        method: method, headers: Object.assign(headers, signed), body: body === undefined ? undefined : data,
        signal: controller.signal, cache: "no-store", credentials: "omit"
      }).finally(function () { clearTimeout(timer); });
    }).catch(function (error) {
      throw error.code ? error : ApiError(t("网络不可用,请稍后再试"), "offline");
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (payload) {
        if (response.ok) return payload;
        var problem = payload.error || {};
        throw ApiError(problem.message || t("服务暂时不可用({status})", { status: response.status }), problem.code, response.status);
      });
    });
  }
  function signedHeaders(account, method, url, data) {
    var timestamp = String(Math.floor(Date.now() / 1000));
    var nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
    return crypto.subtle.digest("SHA-256", enc.encode(data)).then(function (digest) {
      return sign(account, [method, url, timestamp, nonce, hex(digest)].join("\n"));
    }).then(function (signature) {
      return { "X-Device-Id": account.device_id, "X-Timestamp": timestamp, "X-Nonce": nonce, "X-Signature": signature };
    });
  }

  // 确定绑定: a new key for this account, the bind ticket signed with it, the seed sealed.
  function enroll(ticket, name, platform) {
    return newDeviceKey().then(function (key) {
      return sign(key, "enroll\n" + ticket).then(function (proof) {
        return call("POST", "/enroll", {
          ticket: ticket, public_key: key.publicKey, algorithm: key.algorithm, name: name, platform: platform, proof: proof
        });
      }).then(function (result) {
        return sealSeed(result.totp_secret).then(function (seed) {
          var account = {
            device_id: result.device_id, account: result.account, name: result.name || "", algorithm: key.algorithm,
            privateKey: key.privateKey, seed: seed, period: result.period || 30, digits: result.digits || 6,
            added_at: Date.now(), push_endpoint: ""
          };
          return replaceAccount(account).then(function () { return account; });
        });
      });
    });
  }
  // One entry per mail account: a second enrollment of the same account replaces the older one here.
  function replaceAccount(account) {
    return accounts().then(function (list) {
      return Promise.all(list.filter(function (a) { return a.account === account.account; }).map(forget));
    }).then(function () { return saveAccount(account); });
  }

  // Open requests of every account, each tagged with its account; an account the portal no longer
  // knows (解绑 on the web, an admin reset) is forgotten here and reported in ``removed``.
  function pending() {
    return accounts().then(function (list) {
      var removed = [];
      var offline = false;
      return Promise.all(list.map(function (account) {
        return call("GET", "/challenges", undefined, account).then(function (data) {
          return data.challenges.map(function (c) { c.owner = account; return c; });
        }).catch(function (error) {
          if (error.code === "device_unknown") return forget(account).then(function () { removed.push(account); return []; });
          if (error.code === "offline") offline = true;
          return [];
        });
      })).then(function (groups) {
        return { challenges: [].concat.apply([], groups), removed: removed, offline: offline };
      });
    });
  }

  // RFC 6238 with the App's seed (base32), SHA-1, 6 digits, 30 s: the code the web accepts.
  function code(account, now) {
    return openSeed(account.seed).then(function (secret) {
      var alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
      var bits = "";
      secret.replace(/=+$/, "").toUpperCase().split("").forEach(function (c) {
        bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
      });
      var bytes = new Uint8Array(Math.floor(bits.length / 8));
      for (var i = 0; i < bytes.length; i++) bytes[i] = parseInt(bits.substr(i * 8, 8), 2);
      var counter = new Uint8Array(8);
      var step = Math.floor(now / account.period);
      for (var j = 7; j >= 0; j--) { counter[j] = step & 0xff; step = Math.floor(step / 256); }
      return crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-1" }, false, ["sign"])
        .then(function (key) { return crypto.subtle.sign("HMAC", key, counter); })
        .then(function (mac) {
          var h = new Uint8Array(mac);
          var o = h[19] & 0xf;
          var value = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
          return String(value % Math.pow(10, account.digits)).padStart(account.digits, "0");
        });
    });
  }

  // --- Web Push: one browser subscription, registered for every account (device) of this App ------
  function pushKey() {
    return call("GET", "/push-key").then(function (data) { return data.vapid_public_key || ""; });
  }
  // Tell the portal about ``subscription`` for each account that does not have this endpoint yet.
  function registerPush(subscription) {
    var json = subscription.toJSON();
    return accounts().then(function (list) {
      return Promise.all(list.filter(function (a) { return a.push_endpoint !== json.endpoint; }).map(function (account) {
        return call("PUT", "/push-subscription", { endpoint: json.endpoint, keys: json.keys }, account).then(function () {
          account.push_endpoint = json.endpoint;
          return saveAccount(account);
        });
      }));
    });
  }

  // 扫一扫: what a scanned or pasted link asks for (the bind QR, or a login / 解绑 QR).
  function parseLink(text) {
    var enrollMatch = /\/app\/enroll\/([A-Za-z0-9_-]+)/.exec(text || "");
    if (enrollMatch) return { kind: "enroll", ticket: enrollMatch[1] };
    var ticketMatch = /\/app\/t\/([A-Za-z0-9_-]+)/.exec(text || "");
    if (ticketMatch) return { kind: "ticket", ticket: ticketMatch[1] };
    return null;
  }

  root.MailSecurityApp = {
    accounts: accounts, forget: forget, enroll: enroll, call: call, pending: pending, code: code,
    pushKey: pushKey, registerPush: registerPush, parseLink: parseLink, unb64url: unb64url,
    t: t, useMessages: useMessages, language: language
  };
})(self);
