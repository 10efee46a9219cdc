/* Exposure: which annotator's labels the heatmaps show; a cell opens its traces. */
(function (R) {
  "use strict";
  var viewSelect = R.$("view-select");
  if (viewSelect) {
    viewSelect.addEventListener("change", function () {
      var v = viewSelect.value;
      document.querySelectorAll("#exposure .view").forEach(function (d) {
        d.hidden = d.getAttribute("data-view") !== v;
      });
    });
  }
  // A cell lists its traces in the explorer (which listens for "explorer:show").
  document.querySelectorAll("a.cell-link").forEach(function (a) {
    a.addEventListener("click", function () {
      R.emit("explorer:show", { system: a.getAttribute("data-system"), mode: a.getAttribute("data-mode"),
                                annotator: a.getAttribute("data-annotator") || "" });
    });
  });
})(R);
