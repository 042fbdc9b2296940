// Counts down the "Send a new code" cooldown that the server rendered into
// data-cooldown. Without JavaScript the server's own sentence stays and an
// early press is refused with the remaining time.
(function () {
  "use strict";
  function plural(n) {
    return n + (n === 1 ? " second." : " seconds.");
  }
  document.querySelectorAll("form[data-cooldown]").forEach(function (form) {
    var left = parseInt(form.getAttribute("data-cooldown"), 10);
    var button = form.querySelector("button[type=submit]");
    var note = form.querySelector("[data-cooldown-note]");
    if (!button || !(left > 0)) {
      return;
    }
    button.disabled = true;
    function tick() {
      if (left <= 0) {
        button.disabled = false;
        if (note) {
          note.textContent = "";
        }
        return;
      }
      if (note) {
        note.textContent = "You can ask for a new code in " + plural(left);
      }
      left -= 1;
      window.setTimeout(tick, 1000);
    }
    tick();
  });
})();
