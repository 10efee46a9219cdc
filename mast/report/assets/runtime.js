/* mast report runtime: what every section's script shares.
   The page's one script is this file, then each section's script in page order, then
   R.ready(), all inside one function (see mast/report/html.py): R is in scope for them.
   Every string in R.data comes from traces and is untrusted: it is only ever set with
   textContent / DOM properties, never parsed as HTML, and never used as a URL. */
var R = (function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("mast-data").textContent);
  var MODES = {};
  DATA.modes.forEach(function (m) { MODES[m.id] = m; });
  var handlers = {};

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtNum(x) { return x === null || x === undefined ? "–" : Number(x).toLocaleString("en-US"); }
  function fmtCost(x) { return x === null || x === undefined ? "–" : "$" + Number(x).toFixed(x >= 1 ? 2 : 4); }
  function modeLabel(id) { var m = MODES[id]; return m ? id + " " + m.name : String(id); }

  // Sections talk to each other through named events, never through each other's code.
  function on(name, fn) { (handlers[name] = handlers[name] || []).push(fn); }
  function emit(name, detail) { (handlers[name] || []).forEach(function (fn) { fn(detail); }); }
  // Last of the page's script: every section's script ran without an error.
  function ready() { document.documentElement.setAttribute("data-ready", "1"); }

  return { data: DATA, modes: MODES, $: $, el: el, fmtNum: fmtNum, fmtCost: fmtCost, modeLabel: modeLabel,
           on: on, emit: emit, ready: ready };
})();
