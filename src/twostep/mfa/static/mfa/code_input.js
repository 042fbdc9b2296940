// One-time code inputs: removes the spaces and dashes of a code as it is
// pasted or typed ("053 243", "053-243", " 053243 "), so that what is sent
// is the six digits the server accepts. The server strips nothing: without
// JavaScript such a code is refused with "Enter the 6-digit code (digits
// only)." and is not counted as a wrong code.
(function () {
  "use strict";
  // White space (NBSP included), the ASCII hyphen, Unicode hyphens and dashes, the minus sign.
  var separators = /[\s\-\u2010-\u2015\u2212]/g;
  document.querySelectorAll('input[autocomplete="one-time-code"]').forEach(function (input) {
    input.addEventListener("input", function () {
      var cleaned = input.value.replace(separators, "");
      if (cleaned !== input.value) {
        input.value = cleaned;
      }
    });
  });
})();
