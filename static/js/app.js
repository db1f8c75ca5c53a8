// Small progressive enhancements; every page also works without JavaScript.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // On a phone the side navigation is a row of tabs that scrolls: show the current one.
  var current = document.querySelector(".sidenav [aria-current='page']");
  if (current && current.parentElement.scrollWidth > current.parentElement.clientWidth) {
    current.parentElement.scrollLeft = current.offsetLeft - 16;
  }

  function openDialogs(root) {
    root.querySelectorAll("dialog[data-dialog]").forEach(function (dialog) {
      if (!dialog.open && typeof dialog.showModal === "function") dialog.showModal();
    });
  }

  function closeDialog(dialog) {
    var slot = dialog.parentElement;
    dialog.close();
    if (slot) slot.replaceChildren();
  }

  // A panel marked data-swap-errors (用户支持) shows a refused action's answer (4xx) in place: the
  // answer is the panel again with the error; htmx would otherwise drop it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (event.detail.isError && target && target.hasAttribute("data-swap-errors") && event.detail.xhr.status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    openDialogs(event.detail.target);
  });

  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-close-dialog]");
    var dialog = closer && closer.closest("dialog");
    if (dialog && dialog.parentElement && dialog.parentElement.id === "dialog-slot") {
      event.preventDefault();
      closeDialog(dialog);
      return;
    }
    var copier = event.target.closest("[data-copy]");
    if (copier && navigator.clipboard) {
      navigator.clipboard.writeText(copier.getAttribute("data-copy")).then(function () {
        copier.textContent = "已复制";
      });
    }
  });

  document.addEventListener("cancel", function (event) {
    // Esc on a modal: also clear the slot so that a later dialog opens cleanly.
    if (event.target.matches("dialog[data-dialog]")) {
      event.preventDefault();
      closeDialog(event.target);
    }
  }, true);
})();
