// "Send a new code" buttons wait for their cooldown, counting down.  Without
// JavaScript the button stays usable and the server answers with the wait.
document.querySelectorAll("button[data-cooldown]").forEach(function (button) {
  var left = parseInt(button.getAttribute("data-cooldown"), 10) || 0;
  if (left <= 0) {
    return;
  }
  var hint = document.getElementById(button.getAttribute("aria-describedby") || "");
  var counter = hint ? hint.querySelector("[data-countdown]") : null;
  button.disabled = true;
  var timer = window.setInterval(function () {
    left -= 1;
    if (counter) {
      counter.textContent = String(Math.max(left, 0));
    }
    if (left <= 0) {
      window.clearInterval(timer);
      button.disabled = false;
      if (hint) {
        hint.textContent = "You can ask for a new code now.";
      }
    }
  }, 1000);
});
