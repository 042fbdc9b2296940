// "Copy" buttons: data-copy-target names a list (its items, one a line) or a field
// (its value).  Without JavaScript (or without a clipboard) the button stays
// hidden, and the text can still be selected (or, for recovery codes, downloaded).
(function () {
  "use strict";
  if (!navigator.clipboard) {
    return;
  }
  function textOf(target) {
    if ("value" in target && target.tagName !== "LI") {
      return target.value;
    }
    return Array.prototype.map.call(target.querySelectorAll("li"), function (item) {
      return item.textContent.trim();
    }).join("\n") + "\n";
  }
  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    var note = button.parentNode.querySelector("[data-copy-note]");
    if (!target) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(textOf(target)).then(
        function () { if (note) { note.textContent = "Copied."; } },
        function () { if (note) { note.textContent = "Could not copy: select the text and copy it."; } }
      );
    });
  });
})();
