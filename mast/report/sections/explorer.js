/* Trace explorer: filter the traces, open one, follow a failure tag to its evidence steps.
   Trace strings are set with textContent / DOM properties only (see assets/runtime.js). */
(function (R) {
  "use strict";
  var DATA = R.data, $ = R.$, el = R.el, fmtNum = R.fmtNum, fmtCost = R.fmtCost, modeLabel = R.modeLabel;
  var PAGE = 200;
  var MAX_LANES = 6;
  var state = { shown: PAGE, current: null, matches: [] };
  var hay = null;

  /* -- explorer: filtering ------------------------------------------------------------ */
  function haystack() {
    if (hay) return hay;
    hay = {};
    DATA.traces.forEach(function (t) {
      var parts = [t.id, t.system, t.task || "", t.framework || ""];
      t.tags.forEach(function (g) { parts.push(g[0], g[1], g[4] || ""); });
      (t.signals || []).forEach(function (g) { parts.push("signal", g[0], g[1], g[4] || ""); });
      t.roots.forEach(function (r) { parts.push(r[1] || "", r[3] || ""); });
      var d = DATA.details[t.id];
      if (d) {
        parts.push(d.agents.join(" "));
        d.steps.forEach(function (s) { parts.push(s[5] || "", s[7] || "", s[8] || ""); });
      }
      hay[t.id] = parts.join("\n").toLowerCase();
    });
    return hay;
  }

  function matches(t, f) {
    if (f.system && t.system !== f.system) return false;
    if (f.outcome && t.outcome !== f.outcome) return false;
    if (f.annotator && t.annotators.indexOf(f.annotator) < 0 &&
        !t.roots.some(function (r) { return r[0] === f.annotator; })) return false;
    if (f.mode) {
      var ok = t.tags.some(function (g) {
        return (f.mode === "*" || g[0] === f.mode) && (!f.annotator || g[1] === f.annotator);
      });
      if (!ok) return false;
    }
    if (f.terms.length) {
      var h = haystack()[t.id];
      for (var i = 0; i < f.terms.length; i++) if (h.indexOf(f.terms[i]) < 0) return false;
    }
    return true;
  }

  function filters() {
    var q = $("f-text").value.toLowerCase().trim();
    return {
      system: $("f-system").value, mode: $("f-mode").value, annotator: $("f-annotator").value,
      outcome: $("f-outcome").value, terms: q ? q.split(/\s+/) : []
    };
  }

  function apply() {
    var f = filters();
    state.matches = DATA.traces.filter(function (t) { return matches(t, f); });
    state.shown = PAGE;
    renderList();
  }

  function renderList() {
    var list = $("trace-list");
    list.replaceChildren();
    var n = state.matches.length;
    $("result-count").textContent = n + " of " + DATA.traces.length + " trace" +
      (DATA.traces.length === 1 ? "" : "s") + " in this report match";
    state.matches.slice(0, state.shown).forEach(function (t) {
      var li = el("li");
      var b = el("button", "trace-item");
      b.type = "button";
      b.setAttribute("data-trace", t.id);
      if (state.current === t.id) b.setAttribute("aria-current", "true");
      var head = el("span", "ti-head");
      head.appendChild(el("span", "ti-sys", t.system));
      head.appendChild(el("span", "outcome " + (t.outcome === "failure" || t.outcome === "success" ? t.outcome : ""), t.outcome));
      head.appendChild(el("span", "ti-id", t.id.slice(0, 15)));
      b.appendChild(head);
      b.appendChild(el("span", "ti-task", t.task || "(no task recorded)"));
      var seen = {};
      var chips = el("span", "chips");
      t.tags.forEach(function (g) {
        if (seen[g[0]]) return;
        seen[g[0]] = 1;
        var c = el("span", "chip", g[0]);
        c.setAttribute("data-mode", g[0]);
        c.title = modeLabel(g[0]) + " (click: its rationale and evidence)";
        chips.appendChild(c);
      });
      // Signals: hints, not failure labels; a chip of their own kind, never a failure chip.
      var sseen = {};
      (t.signals || []).forEach(function (g) {
        if (seen[g[0]] || sseen[g[0]]) return;
        sseen[g[0]] = 1;
        var c = el("span", "chip chip-signal", "signal " + g[0]);
        c.setAttribute("data-signal", g[0]);
        c.title = "Signal (a hint, not a failure label): " + modeLabel(g[0]);
        chips.appendChild(c);
      });
      if (t.tags.length || (t.signals || []).length) b.appendChild(chips);
      // One click from a label to its rationale and evidence: a chip opens the trace with its tag active.
      b.addEventListener("click", function (e) {
        var chip = e.target && e.target.closest ? e.target.closest(".chip") : null;
        openTrace(t.id, true);
        if (chip) focusTag(chip.getAttribute("data-mode"), chip.getAttribute("data-signal"));
      });
      li.appendChild(b);
      list.appendChild(li);
    });
    if (n > state.shown) {
      var more = el("button", "more", "Show " + Math.min(PAGE, n - state.shown) + " more (" + (n - state.shown) + " left)");
      more.type = "button";
      more.addEventListener("click", function () { state.shown += PAGE; renderList(); });
      list.appendChild(more);
    }
  }

  /* -- explorer: one trace ------------------------------------------------------------- */
  var byId = {};
  DATA.traces.forEach(function (t) { byId[t.id] = t; });

  function openTrace(id, push) {
    var t = byId[id];
    if (!t) return;
    state.current = id;
    document.querySelectorAll("button.trace-item").forEach(function (b) {
      if (b.getAttribute("data-trace") === id) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    });
    if (push && window.history && history.replaceState) {
      try { history.replaceState(null, "", "#trace=" + encodeURIComponent(id)); } catch (e) { /* file: quirks */ }
    }
    var box = $("trace-detail");
    box.replaceChildren();
    box.appendChild(el("h3", null, t.system + " · " + t.id));
    var meta = [t.outcome + (t.outcome_reason ? " (" + t.outcome_reason + ")" : ""), fmtNum(t.steps) + " steps", fmtNum(t.agents) + " agents",
      "tokens " + fmtNum(t.tokens), "cost " + fmtCost(t.cost)];
    if (t.framework) meta.push(t.framework);
    box.appendChild(el("p", "dim", meta.join(" · ")));
    if (t.task) {
      var task = el("div", "task", t.task + (t.task_len > t.task.length ? " … (" + (t.task_len - t.task.length) + " more characters)" : ""));
      box.appendChild(task);
    }
    var tags = el("div", "tags");
    tagBoxes(t.tags).forEach(function (b) { tags.appendChild(b); });
    t.roots.forEach(function (r) { tags.appendChild(rootBox(r)); });
    if (!t.tags.length && !t.roots.length) {
      tags.appendChild(el("p", "dim", t.annotators.length ? "No failure mode labelled present by " + t.annotators.join(", ") + "." : "No labels for this trace."));
    }
    (t.signals || []).forEach(function (g) { tags.appendChild(signalBox(g)); });
    box.appendChild(tags);
    var d = DATA.details[id];
    if (!d) {
      box.appendChild(el("p", "note", "Steps not included in this report (size budget). Read them with: mast traces show " + id));
      return;
    }
    box.appendChild(timeline(d, t));
  }

  function focusTag(mode, signal) {
    var sel = mode ? "#trace-detail .tag:not(.signal) a.tag-link[data-mode='" + CSS.escape(mode) + "']"
                   : "#trace-detail .tag.signal a.tag-link[data-signal='" + CSS.escape(signal || "") + "']";
    var a = document.querySelector(sel);
    if (a) { a.click(); a.focus({ preventScroll: true }); }
  }

  function evidenceOf(g) {
    return (g[3] || []).map(Number).filter(function (x) { return isFinite(x); });
  }

  // One box per mode: the mode links to the union of its evidence; each annotator's line
  // links to that annotator's own evidence steps.
  function tagBoxes(tags) {
    var order = [], byMode = {};
    tags.forEach(function (g) {
      if (!byMode[g[0]]) { byMode[g[0]] = []; order.push(g[0]); }
      byMode[g[0]].push(g);
    });
    return order.map(function (mode) {
      var rows = byMode[mode], all = [];
      rows.forEach(function (g) { evidenceOf(g).forEach(function (n) { if (all.indexOf(n) < 0) all.push(n); }); });
      all.sort(function (a, b) { return a - b; });
      var box = el("div", "tag");
      var a = el("a", "tag-link", modeLabel(mode));
      a.href = all.length ? "#step-" + all[0] : "#trace-detail";
      a.setAttribute("data-mode", mode);
      a.addEventListener("click", function (e) { e.preventDefault(); activate(box, all); });
      box.appendChild(a);
      box.appendChild(el("span", "dim", all.length ? " · evidence step" + (all.length > 1 ? "s " : " ") + all.join(", ") : " · no evidence steps given"));
      rows.forEach(function (g) {
        var line = el("div", "who");
        line.appendChild(el("span", "ann", g[1]));
        if (g[2] !== null && g[2] !== undefined) line.appendChild(el("span", "dim", " · confidence " + Number(g[2]).toFixed(2)));
        var ev = evidenceOf(g);
        if (ev.length) {
          line.appendChild(el("span", "dim", " · "));
          var own = el("a", "ev-link", "step" + (ev.length > 1 ? "s " : " ") + ev.join(", "));
          own.href = "#step-" + ev[0];
          own.addEventListener("click", function (e) { e.preventDefault(); activate(box, ev); });
          line.appendChild(own);
        }
        if (g[4]) line.appendChild(el("span", "why", g[4]));
        box.appendChild(line);
      });
      return box;
    });
  }

  // A signal: a detector too imprecise to be a failure label points at some steps.
  // Shown as a hint, worded and styled apart from the failure tags.
  function signalBox(g) {
    var box = el("div", "tag signal");
    var ev = evidenceOf(g);
    var a = el("a", "tag-link", "Signal: " + modeLabel(g[0]));
    a.href = ev.length ? "#step-" + ev[0] : "#trace-detail";
    a.setAttribute("data-signal", g[0]);
    a.addEventListener("click", function (e) { e.preventDefault(); activate(box, ev); });
    box.appendChild(a);
    box.appendChild(el("span", "dim", " · a hint from " + g[1] + ", not a failure label" +
      (ev.length ? " · step" + (ev.length > 1 ? "s " : " ") + ev.join(", ") : "")));
    if (g[4]) box.appendChild(el("span", "why", g[4]));
    return box;
  }

  function rootBox(r) {
    var box = el("div", "tag root");
    var step = r[2] === null || r[2] === undefined ? null : Number(r[2]);
    var a = el("a", "tag-link", "Root cause: " + (r[1] || "(agent not given)") + (step === null ? "" : " at step " + step));
    a.href = step === null ? "#trace-detail" : "#step-" + step;
    a.addEventListener("click", function (e) { e.preventDefault(); activate(box, step === null ? [] : [step]); });
    box.appendChild(a);
    box.appendChild(el("span", "dim", " · " + r[0]));
    if (r[3]) box.appendChild(el("span", "why", r[3]));
    return box;
  }

  function activate(box, steps) {
    document.querySelectorAll(".tag.active").forEach(function (x) { x.classList.remove("active"); });
    document.querySelectorAll(".step.highlight").forEach(function (x) { x.classList.remove("highlight"); });
    box.classList.add("active");
    var first = null;
    steps.forEach(function (n) {
      var s = $("step-" + n);
      if (s) { s.classList.add("highlight"); if (!first) first = s; }
    });
    if (first) first.scrollIntoView({ block: "center" });
  }

  function timeline(d, t) {
    // One lane per agent (the busiest ones); the rest share a last lane.
    var counts = d.agents.map(function () { return 0; });
    d.steps.forEach(function (s) { counts[s[1]]++; });
    var order = d.agents.map(function (_, i) { return i; });
    var lanes = {}, laneNames = [];
    if (d.agents.length > MAX_LANES) {
      order.sort(function (a, b) { return counts[b] - counts[a]; });
      order.slice(0, MAX_LANES - 1).sort(function (a, b) { return a - b; }).forEach(function (i) {
        lanes[i] = laneNames.length; laneNames.push(d.agents[i]);
      });
      laneNames.push("other agents");
      order.slice(MAX_LANES - 1).forEach(function (i) { lanes[i] = MAX_LANES - 1; });
    } else {
      order.forEach(function (i) { lanes[i] = i; laneNames.push(d.agents[i]); });
    }
    var grid = el("div", "timeline");
    grid.style.gridTemplateColumns = "44px repeat(" + laneNames.length + ", minmax(150px, 1fr))";
    var row = 1;
    grid.appendChild(cell(el("div", "lane-head", "step"), row, 1));
    laneNames.forEach(function (n, i) { grid.appendChild(cell(el("div", "lane-head", n), row, i + 2)); });
    var prev = -1;
    d.steps.forEach(function (s) {
      row++;
      if (s[0] > prev + 1) {
        var gap = el("div", "gap", "steps " + (prev + 1) + "–" + (s[0] - 1) + " not included in this report (mast traces show " + t.id + ")");
        grid.appendChild(cell(gap, row, null));
        row++;
      }
      prev = s[0];
      grid.appendChild(cell(el("div", "stepno", s[0]), row, 1));
      grid.appendChild(cell(stepCard(s, d), row, lanes[s[1]] + 2));
    });
    if (d.n > prev + 1) {
      grid.appendChild(cell(el("div", "gap", "steps " + (prev + 1) + "–" + (d.n - 1) + " not included in this report"), row + 1, null));
    }
    return grid;
  }

  function cell(node, row, col) {
    node.style.gridRow = String(row);
    if (col) node.style.gridColumn = String(col);
    return node;
  }

  function stepCard(s, d) {
    // s = [step, agent index, kind, role, target, content, full length, tool, tool args, status, tokens, cost]
    var card = el("div", "step k-" + String(s[2]).replace(/[^a-z_]/g, ""));
    card.id = "step-" + Number(s[0]);
    var h = el("div", "sh");
    h.appendChild(el("span", "sn", "#" + s[0]));
    h.appendChild(el("span", null, d.agents[s[1]]));
    h.appendChild(el("span", null, s[2] + (s[3] ? " · " + s[3] : "")));
    if (s[4]) h.appendChild(el("span", null, "→ " + s[4]));
    if (s[9]) h.appendChild(el("span", null, "status " + s[9]));
    if (s[10] !== null && s[10] !== undefined) h.appendChild(el("span", null, fmtNum(s[10]) + " tok"));
    if (s[11] !== null && s[11] !== undefined) h.appendChild(el("span", null, fmtCost(s[11])));
    card.appendChild(h);
    if (s[7]) card.appendChild(el("pre", null, s[7] + "(" + (s[8] || "") + ")"));
    if (s[5]) card.appendChild(el("pre", null, s[5]));
    if (s[6] !== null && s[5] !== null && s[6] > (s[5] || "").length) {
      card.appendChild(el("div", "cut", "… " + fmtNum(s[6] - s[5].length) + " more characters not included"));
    }
    return card;
  }

  function setFilter(id, value) {
    var s = $(id);
    for (var i = 0; i < s.options.length; i++) {
      if (s.options[i].value === value) { s.selectedIndex = i; return; }
    }
    s.selectedIndex = 0;
  }

  /* -- wiring -------------------------------------------------------------------------- */
  // Another section names a trace (e.g. an unclassified one in the judge runs table).
  R.on("explorer:open", function (id) {
    if (!byId[id]) return;
    if (state.matches.indexOf(byId[id]) < 0) { $("filters").reset(); state.matches = DATA.traces.slice(); }
    openTrace(id, true);
    $("trace-detail").scrollIntoView({ block: "start" });
  });
  R.on("explorer:show", function (f) {
    setFilter("f-system", f.system);
    setFilter("f-mode", f.mode);
    setFilter("f-annotator", f.annotator);
    setFilter("f-outcome", "");
    $("f-text").value = "";
    apply();
  });
  ["f-system", "f-mode", "f-annotator", "f-outcome"].forEach(function (id) { $(id).addEventListener("change", apply); });
  var timer = null;
  $("f-text").addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 150); });
  $("filters").addEventListener("submit", function (e) { e.preventDefault(); apply(); });
  $("filters").addEventListener("reset", function () { setTimeout(apply, 0); });
  apply();
  var m = /^#trace=(.+)$/.exec(location.hash);
  if (m) { try { openTrace(decodeURIComponent(m[1]), false); } catch (e) { /* a malformed hash opens nothing */ } }
})(R);
