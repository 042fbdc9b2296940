// A message about one part of a long page (a session signed out, an address
// added) is moved into that part when the page opens there, instead of
// staying at the top, out of view. Without JavaScript it stays at the top.
(function () {
  "use strict";
  var messages = document.querySelector("main > .messages");
  var id = "";
  try {
    id = decodeURIComponent(window.location.hash.slice(1));
  } catch (malformed) {
    return;
  }
  var target = id ? document.getElementById(id) : null;
  if (!messages || !target || target.tagName === "MAIN" || target.contains(messages)) {
    return;
  }
  var heading = /^H[1-6]$/.test(target.tagName) ? target : target.querySelector("h2, h3");
  if (heading) {
    heading.after(messages);
  } else {
    target.prepend(messages);
  }
})();
