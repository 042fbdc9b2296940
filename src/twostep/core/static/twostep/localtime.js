// Times are written in UTC (see twostep_time.local_time); this shows each in
// the reader's own time zone, with the UTC time kept as its tooltip. Readers
// whose zone is UTC, and pages without JavaScript, keep the UTC text.
(function () {
  "use strict";
  function pad(n) {
    return String(n).padStart(2, "0");
  }
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
    var text = pad(when.getHours()) + ":" + pad(when.getMinutes());
    if (element.getAttribute("data-local") === "datetime") {
      text = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) + " " + text;
    }
    element.title = element.textContent;
    element.textContent = text + " " + zone.value;
  });
})();
