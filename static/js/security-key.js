// 安全密钥 (WebAuthn): a <form data-webauthn="create|get" data-webauthn-options="{…}"> runs the browser
// ceremony on submit, puts the result (py_webauthn's JSON, base64url) into its hidden input
// "credential", then submits itself: through htmx when it has hx-post, else as a normal form.
// Delegated from document, so forms that htmx swaps in later work too; no inline script (CSP).
(function () {
  "use strict";
  // What the user reads comes from the page, in its language: the form's data-webauthn-msg-<key>
  // attributes (templates/security/_macros.html webauthn_messages), or an ancestor's.
  var KEYS = ["unsupported", "cancelled", "registered", "insecure", "failed"];
  var HTMX_VERBS = ["hx-post", "hx-put", "hx-patch"];

  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(binary, function (c) { return c.charCodeAt(0); }).buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer), binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(list) {
    return (list || []).map(function (item) { return Object.assign({}, item, { id: toBytes(item.id) }); });
  }

  function publicKeyOptions(kind, options) {
    var publicKey = Object.assign({}, options, { challenge: toBytes(options.challenge) });
    if (kind === "create") {
      publicKey.user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
      publicKey.excludeCredentials = withBuffers(options.excludeCredentials);
    } else {
      publicKey.allowCredentials = withBuffers(options.allowCredentials);
    }
    return publicKey;
  }

  // The JSON that py_webauthn's parse_registration/authentication_credential_json read.
  function serialise(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      response.userHandle = toText(r.userHandle);
    }
    return JSON.stringify({
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      authenticatorAttachment: credential.authenticatorAttachment || null
    });
  }

  function wording(form, key) {
    var attribute = "data-webauthn-msg-" + (KEYS.indexOf(key) >= 0 ? key : "failed");
    var holder = form.closest("[" + attribute + "]");
    if (holder) return holder.getAttribute(attribute);
    holder = form.closest("[data-webauthn-msg-failed]");
    return holder ? holder.getAttribute("data-webauthn-msg-failed") : "";
  }

  function message(form, error) {
    var name = error && error.name, key = "failed";
    if (name === "NotAllowedError" || name === "AbortError") key = "cancelled";
    else if (name === "InvalidStateError") key = "registered";
    else if (name === "SecurityError") key = "insecure";
    else if (name === "NotSupportedError") key = "unsupported";
    return wording(form, key) || (error && error.message) || "";  // the browser's own words, if the page has none
  }

  function showError(form, text) {
    var slot = form.querySelector("[data-webauthn-error]");
    if (!slot) return;
    slot.textContent = text;
    slot.hidden = !text;
  }

  function credentialField(form) {
    var field = form.querySelector("input[data-webauthn-result]") || form.querySelector("input[name='credential']");
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "credential";
      form.appendChild(field);
    }
    return field;
  }

  function submitFilled(form, submitter) {
    form.dataset.webauthnReady = "1"; // the next submit event of this form passes through once
    var viaHtmx = window.htmx && HTMX_VERBS.some(function (verb) { return form.hasAttribute(verb); });
    if (viaHtmx) {
      window.htmx.trigger(form, "submit");
    } else if (typeof form.requestSubmit === "function") {
      form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
    } else {
      form.submit();
    }
  }

  function ceremony(form, submitter) {
    var kind = form.getAttribute("data-webauthn");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError(form, wording(form, "unsupported"));
      return;
    }
    var options;
    try {
      options = publicKeyOptions(kind, JSON.parse(form.getAttribute("data-webauthn-options")));
    } catch (error) {
      showError(form, wording(form, "failed"));
      return;
    }
    form.dataset.webauthnBusy = "1";
    showError(form, "");
    var call = kind === "create" ? navigator.credentials.create({ publicKey: options })
                                 : navigator.credentials.get({ publicKey: options });
    call.then(function (credential) {
      if (!credential) throw new DOMException("no credential", "NotAllowedError");
      credentialField(form).value = serialise(credential);
      delete form.dataset.webauthnBusy;
      submitFilled(form, submitter);
    }).catch(function (error) {
      delete form.dataset.webauthnBusy;
      showError(form, message(form, error));
    });
  }

  // Capture phase: runs before htmx's own submit listener on the form, which then never sees
  // the first submit; the refilled one (flag set) goes through to htmx or the browser.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var kind = form.getAttribute("data-webauthn");
    if (kind !== "create" && kind !== "get") return;
    if (form.dataset.webauthnReady === "1") {
      delete form.dataset.webauthnReady;
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    if (form.dataset.webauthnBusy !== "1") ceremony(form, event.submitter);
  }, true);
})();
