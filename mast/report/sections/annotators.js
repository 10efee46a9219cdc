/* Annotators: an unclassified trace in the judge runs table opens in the explorer. */
(function (R) {
  "use strict";
  document.querySelectorAll("#annotators a.trace-link").forEach(function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      R.emit("explorer:open", a.getAttribute("data-trace"));
    });
  });
})(R);
