// "Copy codes" for a list of recovery codes.  Without JavaScript (or without a
// clipboard) the button stays hidden and the codes can be selected or downloaded.
(function () {
  "use strict";
  if (!navigator.clipboard) {
    return;
  }
  document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
    var list = document.getElementById(button.getAttribute("data-copy-target"));
    var note = button.parentNode.querySelector("[data-copy-note]");
    if (!list) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = Array.prototype.map.call(list.querySelectorAll("li"), function (item) {
        return item.textContent.trim();
      }).join("\n") + "\n";
      navigator.clipboard.writeText(text).then(
        function () { if (note) { note.textContent = "Copied."; } },
        function () { if (note) { note.textContent = "Could not copy: select the codes and copy them, or download them."; } }
      );
    });
  });
})();
