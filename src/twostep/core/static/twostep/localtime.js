// Times are written in UTC (see twostep_time.local_time and local_date); this
// shows each in the reader's own time zone, with the UTC time kept as its
// tooltip, and says the same in the labels that screen readers read out
// ("Sign out Firefox, signed in 2026-12-01 06:05 UTC"). Readers whose zone is
// UTC, and pages without JavaScript, keep the UTC text.
(function () {
  "use strict";
  function pad(n) {
    return String(n).padStart(2, "0");
  }
  var labelled = document.querySelectorAll("[aria-label]");
  document.querySelectorAll("time[data-local]").forEach(function (element) {
    var when = new Date(element.getAttribute("datetime"));
    if (isNaN(when.getTime())) {
      return;
    }
    var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(when);
    var zone = parts.filter(function (part) { return part.type === "timeZoneName"; })[0];
    if (!zone || (when.getTimezoneOffset() === 0 && /^(GMT|UTC)$/.test(zone.value))) {
      return;
    }
    var kind = element.getAttribute("data-local");
    var day = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate());
    if (kind === "date") {
      element.textContent = day;  // the tooltip already gives the UTC time
      return;
    }
    var text = pad(when.getHours()) + ":" + pad(when.getMinutes());
    if (kind === "datetime") {
      text = day + " " + text;
    }
    var utc = element.textContent;
    element.title = utc;
    element.textContent = text + " " + zone.value;
    labelled.forEach(function (other) {
      var label = other.getAttribute("aria-label");
      if (label.indexOf(utc) !== -1) {
        other.setAttribute("aria-label", label.split(utc).join(element.textContent));
      }
    });
  });
})();
