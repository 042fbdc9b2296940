// Counts down the "Send a new code" cooldown that the server rendered into
// data-cooldown, then says the button works again. Without JavaScript the
// server's own sentence stays and an early press is refused with the time left.
(function () {
  "use strict";
  function seconds(n) {
    return n + (n === 1 ? " second." : " seconds.");
  }
  document.querySelectorAll("form.resend[data-cooldown]").forEach(function (form) {
    var left = parseInt(form.getAttribute("data-cooldown"), 10);
    var button = form.querySelector("button[type=submit]");
    var note = form.querySelector("[data-cooldown-note]");
    var ready = form.querySelector("[data-ready-note]");
    if (!button || !note || !(left > 0)) {
      return;
    }
    button.disabled = true;
    function tick() {
      if (left <= 0) {
        button.disabled = false;
        note.textContent = "You can ask for a new code now.";
        if (ready) {
          ready.textContent = note.textContent;
        }
        return;
      }
      note.textContent = "You can ask for a new code in " + seconds(left);
      left -= 1;
      window.setTimeout(tick, 1000);
    }
    tick();
  });
})();
