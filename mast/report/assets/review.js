/* Review page: label one trace at a time with the keyboard, keep it in localStorage, export one file.
   Runs on the report's runtime (R).  Trace strings are set with textContent / DOM properties only;
   the export is a Blob URL download, so nothing leaves the page over the network. */
(function (R) {
  "use strict";
  var D = R.data, $ = R.$, el = R.el;
  var MODES = D.modes, T = D.traces, NM = MODES.length;
  var KEY = "mast-review:" + D.review_set;
  var LABELS = { p: "present", a: "absent", u: "unsure" };
  var REVIEWER_RX = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;

  /* -- state: one localStorage entry per trace (a keystroke writes one small entry) -------- */
  var meta = { reviewer: "", pos: 0, mode: 0 };
  var labels = {};  // trace id -> mode id -> {label, evidence_steps, note}
  var storageOk = true;
  function read(k) { try { return JSON.parse(localStorage.getItem(k) || "null"); } catch (e) { return null; } }
  function write(k, v) {
    try { localStorage.setItem(k, JSON.stringify(v)); }
    catch (e) { if (storageOk) { storageOk = false; message("This browser does not keep the labels (storage refused: " + e.name + "). Export before closing the tab."); } }
  }
  var m0 = read(KEY + ":meta");
  if (m0 && typeof m0 === "object") {
    meta.reviewer = typeof m0.reviewer === "string" ? m0.reviewer : "";
    meta.pos = Math.max(0, Math.min(T.length - 1, m0.pos | 0));
    meta.mode = Math.max(0, Math.min(NM - 1, m0.mode | 0));
  }
  var done = 0, given = 0;  // traces with every mode labelled; labels given
  T.forEach(function (t) {
    var v = read(KEY + ":t:" + t.id);
    var own = {};
    if (v && typeof v === "object") {
      MODES.forEach(function (m) {
        var x = v[m.id];
        if (x && (x.label === "present" || x.label === "absent" || x.label === "unsure")) own[m.id] = x;
      });
    }
    labels[t.id] = own;
    var n = count(t.id);
    given += n;
    if (n === NM) done++;
  });
  function count(tid) { return Object.keys(labels[tid]).length; }
  function saveMeta() { write(KEY + ":meta", meta); }
  function saveTrace(tid) { write(KEY + ":t:" + tid, labels[tid]); }

  /* -- the mode rows: built once, refreshed per trace ---------------------------------------- */
  var rows = MODES.map(function (m, i) {
    var li = el("li", "rv-mode");
    li.setAttribute("data-mode", m.id);
    var head = el("div", "rv-mode-head");
    var name = el("span", "rv-mode-name");
    name.appendChild(el("span", "mode-id", m.id));
    name.appendChild(document.createTextNode(" " + m.name));
    name.title = m.definition;
    head.appendChild(name);
    var btns = el("span", "rv-btns");
    var byLabel = {};
    ["present", "absent", "unsure"].forEach(function (lab) {
      var b = el("button", "rv-b rv-" + lab, lab[0].toUpperCase() + lab.slice(1));
      b.type = "button";
      b.setAttribute("data-label", lab);
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", function () { setMode(i); setLabel(lab, false); });
      btns.appendChild(b);
      byLabel[lab] = b;
    });
    head.appendChild(btns);
    li.appendChild(head);
    var hints = el("div", "rv-hints");
    li.appendChild(hints);
    var ev = el("input", "rv-ev");
    ev.type = "text"; ev.placeholder = "evidence steps, e.g. 2, 5-7"; ev.setAttribute("aria-label", "evidence steps of " + m.id);
    ev.autocomplete = "off";
    var note = el("input", "rv-note");
    note.type = "text"; note.placeholder = "note"; note.setAttribute("aria-label", "note on " + m.id);
    note.autocomplete = "off";
    var err = el("span", "rv-err");
    var extra = el("div", "rv-extra");
    extra.appendChild(ev); extra.appendChild(note); extra.appendChild(err);
    li.appendChild(extra);
    li.addEventListener("click", function (e) { if (e.target === li || e.target === head || e.target === name) setMode(i); });
    ev.addEventListener("focus", function () { setMode(i); });
    note.addEventListener("focus", function () { setMode(i); });
    ev.addEventListener("change", function () { commitEvidence(i); });
    note.addEventListener("change", function () { commitNote(i); });
    [ev, note].forEach(function (inp) {
      inp.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === "Escape") {
          e.preventDefault();
          if (inp === ev) commitEvidence(i); else commitNote(i);
          inp.blur();
        }
        e.stopPropagation();  // typing in a box is not a command
      });
    });
    $("rv-modes").appendChild(li);
    return { li: li, buttons: byLabel, hints: hints, ev: ev, note: note, err: err };
  });

  /* -- one trace ------------------------------------------------------------------------------ */
  var cur = null, stepNodes = {};

  function showTrace() {
    cur = T[meta.pos];
    var head = $("rv-trace-head");
    head.replaceChildren();
    if (!cur) { head.appendChild(el("p", "dim", "This review set has no traces.")); return; }
    head.appendChild(el("h2", null, "Trace " + (meta.pos + 1) + " of " + T.length + " · " + cur.system));
    head.appendChild(el("p", "rv-id", cur.id));
    var m = [cur.outcome, cur.n + " steps", cur.agents.length + " agents"];
    if (cur.framework) m.push(cur.framework);
    head.appendChild(el("p", "dim", m.join(" · ")));
    if (cur.reason) head.appendChild(el("p", "rv-reason", "Picked: " + cur.reason));
    if (cur.task) head.appendChild(el("div", "task", cur.task + (cur.task_len > cur.task.length ? " …" : "")));
    var byMode = {};
    cur.hints.forEach(function (h) { (byMode[h[0]] = byMode[h[0]] || []).push(h); });
    rows.forEach(function (r, i) {
      var mode = MODES[i].id;
      fillHints(r.hints, byMode[mode] || []);
      var x = labels[cur.id][mode];
      r.ev.value = x && x.evidence_steps && x.evidence_steps.length ? x.evidence_steps.join(", ") : "";
      r.note.value = x && x.note ? x.note : "";
      r.err.textContent = "";
      paintRow(i);
    });
    renderSteps();
    setMode(meta.mode);
    progress();
  }

  function fillHints(box, hs) {
    box.replaceChildren();
    var absent = [];
    hs.forEach(function (h) {
      // h = [mode, annotator, present|absent|signal, confidence, evidence, rationale]
      if (h[2] === "absent") { absent.push(h[1]); return; }
      var line = el("div", "rv-hint rv-hint-" + h[2]);
      var txt = h[1] + (h[2] === "signal" ? " signal" : ": present") +
        (h[3] !== null && h[3] !== undefined ? " " + Number(h[3]).toFixed(2) : "");
      line.appendChild(el("span", "ann", txt));
      if (h[4] && h[4].length) line.appendChild(el("span", "dim", " · steps " + h[4].join(", ")));
      if (h[5]) line.appendChild(el("span", "why", h[5]));
      box.appendChild(line);
    });
    if (absent.length) box.appendChild(el("div", "rv-hint rv-hint-absent dim", "absent: " + absent.join(", ")));
  }

  function paintRow(i) {
    var r = rows[i], x = cur ? labels[cur.id][MODES[i].id] : null;
    ["present", "absent", "unsure"].forEach(function (lab) {
      r.buttons[lab].setAttribute("aria-pressed", x && x.label === lab ? "true" : "false");
    });
    r.li.setAttribute("data-label", x ? x.label : "");
  }

  function renderSteps() {
    var box = $("rv-steps");
    box.replaceChildren();
    stepNodes = {};
    var prev = -1;
    cur.steps.forEach(function (s) {
      // s = [step, agent index, kind, role, target, content, full length, tool, tool args, status]
      if (s[0] > prev + 1) box.appendChild(el("div", "gap", "steps " + (prev + 1) + "–" + (s[0] - 1) + " not included (mast traces show " + cur.id + ")"));
      prev = s[0];
      var card = el("div", "step k-" + String(s[2]).replace(/[^a-z_]/g, ""));
      card.setAttribute("data-step", String(s[0]));
      var h = el("div", "sh");
      h.appendChild(el("span", "sn", "#" + s[0]));
      h.appendChild(el("span", null, cur.agents[s[1]]));
      h.appendChild(el("span", null, s[2] + (s[3] ? " · " + s[3] : "")));
      if (s[4]) h.appendChild(el("span", null, "→ " + s[4]));
      if (s[9]) h.appendChild(el("span", null, "status " + s[9]));
      card.appendChild(h);
      if (s[7]) card.appendChild(el("pre", null, s[7] + "(" + (s[8] || "") + ")"));
      if (s[5]) card.appendChild(el("pre", null, s[5]));
      if (s[6] !== null && s[5] !== null && s[6] > (s[5] || "").length) card.appendChild(el("div", "cut", "… " + (s[6] - s[5].length) + " more characters not included"));
      card.addEventListener("click", function () { toggleEvidence(s[0]); });
      stepNodes[s[0]] = card;
      box.appendChild(card);
    });
    if (cur.n > prev + 1) box.appendChild(el("div", "gap", "steps " + (prev + 1) + "–" + (cur.n - 1) + " not included"));
  }

  function highlight() {
    Object.keys(stepNodes).forEach(function (k) { stepNodes[k].classList.remove("highlight", "hinted"); });
    if (!cur) return;
    var mode = MODES[meta.mode].id, x = labels[cur.id][mode];
    cur.hints.forEach(function (h) {
      if (h[0] === mode && h[2] !== "absent") (h[4] || []).forEach(function (n) { if (stepNodes[n]) stepNodes[n].classList.add("hinted"); });
    });
    ((x && x.evidence_steps) || []).forEach(function (n) { if (stepNodes[n]) stepNodes[n].classList.add("highlight"); });
  }

  var curRow = null;
  function setMode(i) {
    i = Math.max(0, Math.min(NM - 1, i));
    if (curRow) curRow.classList.remove("cur");
    meta.mode = i;
    curRow = rows[i].li;
    rows[i].li.classList.add("cur");
    var r = rows[i].li.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) rows[i].li.scrollIntoView({ block: "nearest" });
    highlight();
    saveMeta();
  }

  function go(pos) {
    if (!T.length) return;
    pos = Math.max(0, Math.min(T.length - 1, pos));
    if (pos === meta.pos && cur) return;
    meta.pos = pos;
    meta.mode = 0;
    saveMeta();
    showTrace();
    window.scrollTo(0, 0);
  }

  /* -- labelling -------------------------------------------------------------------------------- */
  function update(mode, fn) {
    var before = count(cur.id);
    var x = labels[cur.id][mode] || { label: null, evidence_steps: [], note: null };
    fn(x);
    if (x.label) labels[cur.id][mode] = x;
    else delete labels[cur.id][mode];
    var after = count(cur.id);
    given += after - before;
    done += (after === NM ? 1 : 0) - (before === NM ? 1 : 0);
    saveTrace(cur.id);
    progress();
  }

  function setLabel(lab, advance) {
    if (!cur) return;
    var i = meta.mode;
    update(MODES[i].id, function (x) { x.label = lab; });
    paintRow(i);
    if (advance && i < NM - 1) setMode(i + 1);
    else highlight();
  }

  function clearLabel() {
    if (!cur) return;
    var i = meta.mode;
    update(MODES[i].id, function (x) { x.label = null; x.evidence_steps = []; x.note = null; });
    rows[i].ev.value = ""; rows[i].note.value = "";
    paintRow(i);
    highlight();
  }

  function restAbsent() {
    if (!cur) return;
    MODES.forEach(function (m, i) {
      if (!labels[cur.id][m.id]) { update(m.id, function (x) { x.label = "absent"; }); paintRow(i); }
    });
  }

  function parseSteps(text) {
    var out = [], bad = [];
    text.split(/[\s,;]+/).filter(Boolean).forEach(function (part) {
      var mm = /^(\d+)(?:-(\d+))?$/.exec(part);
      if (!mm) { bad.push(part); return; }
      var a = +mm[1], b = mm[2] === undefined ? a : +mm[2];
      if (b < a || b - a > 1000) { bad.push(part); return; }
      for (var k = a; k <= b; k++) {
        if (k >= cur.n) { bad.push(String(k)); return; }
        if (out.indexOf(k) < 0) out.push(k);
      }
    });
    out.sort(function (x, y) { return x - y; });
    return { steps: out, bad: bad };
  }

  function commitEvidence(i) {
    if (!cur) return;
    var r = rows[i], p = parseSteps(r.ev.value);
    if (p.bad.length) { r.err.textContent = "not a step of this trace (0–" + (cur.n - 1) + "): " + p.bad.join(", "); return; }
    r.err.textContent = "";
    var mode = MODES[i].id;
    // Evidence without a label says the mode is there: it makes the label "present".
    update(mode, function (x) { x.evidence_steps = p.steps; if (!x.label && p.steps.length) x.label = "present"; });
    paintRow(i);
    highlight();
  }

  function commitNote(i) {
    if (!cur) return;
    var text = rows[i].note.value.trim();
    var mode = MODES[i].id;
    if (!labels[cur.id][mode] && !text) return;
    update(mode, function (x) { x.note = text || null; if (!x.label) x.label = "unsure"; });
    paintRow(i);
  }

  function toggleEvidence(step) {
    if (!cur) return;
    var mode = MODES[meta.mode].id, x = labels[cur.id][mode];
    var ev = (x && x.evidence_steps ? x.evidence_steps.slice() : []);
    var k = ev.indexOf(step);
    if (k >= 0) ev.splice(k, 1); else ev.push(step);
    ev.sort(function (a, b) { return a - b; });
    rows[meta.mode].ev.value = ev.join(", ");
    commitEvidence(meta.mode);
  }

  /* -- progress, messages, export ------------------------------------------------------------- */
  function progress() {
    var total = T.length * NM;
    $("rv-progress").max = total || 1;
    $("rv-progress").value = given;
    $("rv-progress-text").textContent = done + " of " + T.length + " traces done · " + given + " of " + total +
      " labels" + (cur ? " · this trace " + count(cur.id) + "/" + NM : "");
  }

  var msgTimer = null;
  function message(text) {
    var p = $("rv-message");
    p.textContent = text;
    p.hidden = false;
    clearTimeout(msgTimer);
    msgTimer = setTimeout(function () { p.hidden = true; }, 8000);
  }

  function exportLabels() {
    var who = $("rv-reviewer").value.trim();
    if (!REVIEWER_RX.test(who)) {
      message("Give your name first (letters, digits and _ . @ -): the labels are stored as human:<name>.");
      $("rv-reviewer").focus();
      return;
    }
    var out = [];
    T.forEach(function (t) {
      MODES.forEach(function (m) {
        var x = labels[t.id][m.id];
        if (x) out.push({ trace_id: t.id, mode: m.id, label: x.label, evidence_steps: x.evidence_steps || [], note: x.note || null });
      });
    });
    var doc = { format: D.format, version: D.version, review_set: D.review_set, reviewer: who, taxonomy: D.taxonomy, labels: out };
    var blob = new Blob([JSON.stringify(doc, null, 1) + "\n"], { type: "application/json" });
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = "labels-" + D.review_set + "-" + who + ".json";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
    message("Exported " + out.length + " labels as " + a.download + ". Store them with: mast ingest " + a.download);
  }

  function toggleHelp(show) {
    var h = $("rv-help");
    h.hidden = show === undefined ? !h.hidden : !show;
    $("rv-help-toggle").setAttribute("aria-expanded", h.hidden ? "false" : "true");
  }

  /* -- wiring ----------------------------------------------------------------------------------- */
  var reviewer = $("rv-reviewer");
  reviewer.value = meta.reviewer;
  reviewer.addEventListener("input", function () { meta.reviewer = reviewer.value.trim(); saveMeta(); });
  reviewer.addEventListener("keydown", function (e) {
    if (e.key === "Enter" || e.key === "Escape") { e.preventDefault(); reviewer.blur(); }
    e.stopPropagation();
  });
  $("rv-export").addEventListener("click", exportLabels);
  $("rv-help-toggle").addEventListener("click", function () { toggleHelp(); });

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    var k = e.key, handled = true;
    if (k === "j" || k === "ArrowRight") go(meta.pos + 1);
    else if (k === "k" || k === "ArrowLeft") go(meta.pos - 1);
    else if (k === "ArrowDown") setMode(meta.mode + 1);
    else if (k === "ArrowUp") setMode(meta.mode - 1);
    else if (LABELS[k]) setLabel(LABELS[k], true);
    else if (k === "A") restAbsent();
    else if (k === "x") clearLabel();
    else if (k === "e") rows[meta.mode].ev.focus();
    else if (k === "n") rows[meta.mode].note.focus();
    else if (k === "f") nextOpen();
    else if (k === "S") exportLabels();
    else if (k === "?") toggleHelp();
    else if (k === "Escape") toggleHelp(false);
    else handled = false;
    if (handled) e.preventDefault();
  });

  function nextOpen() {
    for (var d = 1; d <= T.length; d++) {
      var p = (meta.pos + d) % T.length;
      if (count(T[p].id) < NM) { go(p); return; }
    }
    message("Every trace of this review set is labelled: export the labels (S).");
  }

  showTrace();
})(R);
