// "Send a new code" buttons wait for their cooldown, counting down in their
// label.  Without JavaScript the button stays usable and the server answers
// with the time left.
document.querySelectorAll("button[data-cooldown]").forEach(function (button) {
  var left = parseInt(button.getAttribute("data-cooldown"), 10) || 0;
  if (left <= 0) {
    return;
  }
  var label = button.textContent;
  var hint = document.getElementById(button.getAttribute("aria-describedby") || "");
  var counter = hint ? hint.querySelector("[data-countdown]") : null;
  function show() {
    button.textContent = label + " (" + left + " s)";
    if (counter) {
      counter.textContent = String(left);
    }
  }
  button.disabled = true;
  show();
  var timer = window.setInterval(function () {
    left -= 1;
    if (left > 0) {
      show();
      return;
    }
    window.clearInterval(timer);
    button.disabled = false;
    button.textContent = label;
    if (hint) {
      hint.textContent = "You can ask for a new code now.";
    }
  }, 1000);
});
