// 扫一扫 for the 邮箱安全 App: the phone's camera in the page, read by the browser's BarcodeDetector
// where it has one (Android Chrome, Safari) and by jsQR otherwise (loaded only then).
(function (root) {
  "use strict";
  var FRAME_MS = 200;
  var jsQRLoading = null;
  function t(key) { return root.MailSecurityApp ? root.MailSecurityApp.t(key) : key; } // core.js: the page's language

  function loadJsQR() {
    if (root.jsQR) return Promise.resolve(root.jsQR);
    if (!jsQRLoading) {
      jsQRLoading = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = "/static/vendor/jsQR.js";
        script.onload = function () { resolve(root.jsQR); };
        script.onerror = function () { jsQRLoading = null; reject(new Error("jsQR")); };
        document.head.appendChild(script);
      });
    }
    return jsQRLoading;
  }

  function detector() {
    if (!("BarcodeDetector" in root)) return loadJsQR().then(canvasReader);
    return root.BarcodeDetector.getSupportedFormats().then(function (formats) {
      if (formats.indexOf("qr_code") < 0) return loadJsQR().then(canvasReader);
      var native = new root.BarcodeDetector({ formats: ["qr_code"] });
      return function (video) {
        return native.detect(video).then(function (codes) { return codes.length ? codes[0].rawValue : ""; });
      };
    });
  }

  function canvasReader(jsQR) {
    var canvas = document.createElement("canvas");
    var context = canvas.getContext("2d", { willReadFrequently: true });
    return function (video) {
      var width = video.videoWidth, height = video.videoHeight;
      if (!width || !height) return Promise.resolve("");
      var scale = Math.min(1, 640 / Math.max(width, height)); // enough pixels for a QR on screen, fast
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      var image = context.getImageData(0, 0, canvas.width, canvas.height);
      var found = jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
      return Promise.resolve(found ? found.data : "");
    };
  }

  // Start the back camera in ``video``; ``onText`` gets each QR text read until it returns true.
  // Resolves to a stop() function; rejects when there is no camera or no permission.
  function start(video, onText) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return Promise.reject(new Error(t("此浏览器不能使用摄像头")));
    }
    var stream = null;
    var stopped = false;
    function stop() {
      stopped = true;
      if (stream) stream.getTracks().forEach(function (track) { track.stop(); });
      video.srcObject = null;
    }
    return navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false }).then(function (s) {
      stream = s;
      if (stopped) { stop(); return stop; }
      video.srcObject = stream;
      video.setAttribute("playsinline", "");
      video.muted = true;
      return video.play().then(detector).then(function (read) {
        (function next() {
          if (stopped) return;
          read(video).then(function (text) {
            if (text && onText(text)) { stop(); return; }
            setTimeout(next, FRAME_MS);
          }, function () { setTimeout(next, FRAME_MS); });
        })();
        return stop;
      });
    }).catch(function (error) {
      stop();
      throw error;
    });
  }

  root.QrScanner = { start: start };
})(window);
