/* optbench leaderboard page: the table (sort, filter, pages of rows), "best under constraints",
   the machine panel of each row, the runs behind each row, and the figures, all drawn from the JSON
   in #board-data. A row of the table is a cell on one machine, aggregated over its runs (D.agg);
   every record of every run is in D.rows, each naming its row (R.agg). Text is only ever written with
   textContent (and plotly labels are HTML-escaped), so no string from a suite, a plugin or a record
   can become markup. No library but plotly.js. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("board-data").textContent);
  var S = D.strings, R = D.rows, C = D.configs, RUNS = D.runs, M = D.machines;
  var N = D.nAgg, PAGE = 100;
  var MEMBERS = [];  // per row, its records, newest run first
  for (var a0 = 0; a0 < N; a0++) { MEMBERS.push([]); }
  for (var i0 = 0; i0 < R.run.length; i0++) { MEMBERS[R.agg[i0]].push(i0); }
  // The rows, columnar like D.rows: a row of several records is in D.agg (its medians); a row of one
  // record is that record (n 1 when it is ok; else no figures, and it is left out).
  var A = (function () {
    var several = D.agg, keys = Object.keys(several).filter(function (k) { return k !== "at"; }), out = {cfg: [], machine: []};
    keys.forEach(function (k) { out[k] = new Array(N); });
    for (var a = 0; a < N; a++) {
      var i = MEMBERS[a][0], ok = S[R.status[i]] === "ok";
      out.cfg[a] = R.cfg[i];
      out.machine[a] = RUNS.machine[R.run[i]];
      if (MEMBERS[a].length > 1) { continue; }
      keys.forEach(function (k) { out[k][a] = k in R ? (ok ? R[k][i] : null) : null; });
      out.run[a] = R.run[i];
      out.status[a] = R.status[i];
      out.n[a] = ok ? 1 : 0;
      out.out[a] = ok ? 0 : 1;
      out.cont[a] = ok ? R.cont[i] : 0;
    }
    several.at.forEach(function (a, j) { keys.forEach(function (k) { out[k][a] = several[k][j]; }); });
    return out;
  })();

  // --- values -----------------------------------------------------------------------------
  function conf(key) { return function (r) { return C[key][A.cfg[r]]; }; }
  function confStr(key) { return function (r) { return S[C[key][A.cfg[r]]]; }; }
  function row(key) { return function (r) { return A[key][r]; }; }
  var model = confStr("model"), dataset = confStr("dataset"), method = confStr("method"),
      kind = confStr("kind"), params = confStr("params"), backend = confStr("backend"),
      batch = conf("batch"), seed = conf("seed"), status = function (r) { return S[A.status[r]]; };
  function machineOf(r) { return A.machine[r]; }
  function isBaseline(r) { return method(r) === "baseline"; }
  function isContended(r) { return A.cont[r] === 1; }
  function range(key, r) { var g = D.ranges[key]; return g && g[r] ? g[r] : null; }
  // A row's quality: its accuracy, or its score of the metric it is scored by (qm; qlb: lower is better),
  // and its change against its baseline's, in that metric's direction (loss > 0 is worse).
  function given(key, r) { var col = A[key]; return col === undefined || col[r] === undefined ? null : col[r]; }
  function metricOf(r) { return given("qm", r) || "accuracy"; }
  function lowerBetter(r) { return given("qlb", r) === 1; }
  function quality(r) { return given("qm", r) ? given("quality", r) : A.acc[r]; }
  function qualityDelta(r) { return given("qm", r) ? given("dq", r) : A.dacc[r]; }
  function qualityLoss(r) { var d = qualityDelta(r); return d === null ? null : (lowerBetter(r) ? d : -d); }
  function recStatus(i) { return S[R.status[i]]; }
  // why a record was left out of its row's medians, or null when they are of it
  function leftOut(i) {
    if (recStatus(i) !== "ok") { return recStatus(i) || "?"; }
    return R.cont[i] && !A.cont[R.agg[i]] ? "contended" : null;
  }
  function outNote(r) {  // "1 contended, 1 failed left out"
    var counts = {}, order = [];
    MEMBERS[r].forEach(function (i) {
      var why = leftOut(i);
      if (why === null) { return; }
      if (!(why in counts)) { counts[why] = 0; order.push(why); }
      counts[why] += 1;
    });
    return order.length ? order.map(function (w) { return counts[w] + " " + w; }).join(", ") + " left out" : "";
  }
  function contendedWhy(r) {
    var reasons = MEMBERS[r].filter(function (i) { return D.reasons[i]; }).map(function (i) { return D.reasons[i]; });
    return "every run of this cell on this machine was contended (other processes used the CPU while it was timed), "
      + "so its figures are the median of those runs; left out of the fronts and answers unless \u201cshow contended "
      + "rows\u201d is ticked" + (reasons.length ? ": " + reasons[0] : "");
  }

  function fmtFloat(v) {
    var a = Math.abs(v);
    if (a >= 100) { return Math.round(v).toLocaleString("en-US"); }
    return v.toFixed(a >= 10 ? 1 : a >= 1 ? 2 : 3);
  }
  // The table spec's formats (harness/results/table_spec.py FORMATS), by name: a figure reads here as in the
  // report, the terminal and an export.
  function fmtMs(v) {
    var a = Math.abs(v);
    if (a >= 100) { return Math.round(v).toLocaleString("en-US"); }
    return a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }
  function fmtCount(v) { return Math.round(v).toLocaleString("en-US"); }
  function fmtInt(v) { return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6))); }
  function fmtBytes(n) {
    if (Math.abs(n) < 1024) { return n.toFixed(0) + " B"; }
    var units = ["KiB", "MiB", "GiB"], i = -1;
    do { n /= 1024; i += 1; } while (Math.abs(n) >= 1024 && i < units.length - 1);
    return n.toFixed(1) + " " + units[i];
  }
  function times(v) { return v.toFixed(2) + "\u00d7"; }
  function signed(v) { var t = v.toFixed(4); if (t === "-0.0000") { t = "0.0000"; } return (t[0] === "-" ? "" : "+") + t; }
  function fixed4(v) { return v.toFixed(4); }
  function sig4(v) { return String(Number(v.toPrecision(4))); }
  function sig3(v) { return v === 0 ? "0" : v.toPrecision(3); }
  function sig3signed(v) { return (v > 0 ? "+" : "") + sig3(v); }
  function esc(s) {  // for plotly labels, which understand a little HTML
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function label(r) { return method(r) + (params(r) ? " (" + params(r) + ")" : ""); }
  function where(r) { return model(r) + " \u00b7 " + dataset(r) + " \u00b7 " + backend(r) + " \u00b7 batch " + batch(r); }
  function runsSaid(r) {
    return A.n[r] > 1 ? "median of " + A.n[r] + " runs" : "run " + RUNS.id[A.run[r]];
  }

  // --- columns ----------------------------------------------------------------------------
  // A figure: the row's median, and under it the range over its runs where they differ.
  function num(key, fmt, worseBelow) {
    return {type: "num", value: row(key), render: function (r, td) {
      var v = A[key][r];
      if (v === null) { td.textContent = "\u2014"; td.className = "num null"; return; }
      td.textContent = fmt(v);
      td.className = "num" + (worseBelow !== undefined && v < worseBelow - 1e-9 ? " worse" : "");
      var span = range(key, r);
      if (span) {
        td.appendChild(el("span", fmt(span[0]) + "\u2013" + fmt(span[1]), "ci range"));
        td.title = "median of " + A.n[r] + " runs; they range from " + fmt(span[0]) + " to " + fmt(span[1]);
      }
    }};
  }
  function text(get) {
    return {type: "text", value: get, render: function (r, td) {
      var v = get(r);
      if (v === null || v === "" || v === undefined) { td.textContent = "\u2014"; td.className = "null"; return; }
      td.textContent = String(v);
    }};
  }
  function plain(get) {
    return {type: "num", value: get, render: function (r, td) {
      var v = get(r);
      td.textContent = v === null ? "\u2014" : String(v);
      td.className = v === null ? "num null" : "num";
    }};
  }
  function runLink(run, cls) {
    var a = el("a", RUNS.id[run], cls);
    a.href = "../" + RUNS.href[run] + "/report.html";
    a.title = "started " + (RUNS.started[run] || "?") + ": open the run's report";
    return a;
  }
  // What "vs reference" is, for its header; naming the reference backend(s) the records name.
  var REF_TITLE = "the reference backend's baseline p50 / this p50 (same model, dataset, seed and batch size): above 1 is "
    + "faster than the reference baseline, so rows of every backend rank on one scale; across backends a ratio of "
    + "medians measured in different processes, no interval"
    + (D.reference.length === 1 ? ". Reference backend: " + D.reference[0]
      : D.reference.length > 1 ? ". Reference backends (each run names its own): " + D.reference.join(", ") : "");
  var FORMATS = {ms: fmtMs, times: times, fraction: fixed4, signed: signed, sig4: sig4, sig3: sig3, count: fmtCount,
                 bytes: fmtBytes, "int": fmtInt};
  // Columns drawn their own way, by key; every other column of D.columns is a figure, drawn with its format.
  var SPECIAL = {
    model: text(model), method: text(method), params: text(params), batch: plain(batch), kind: text(kind),
    dataset: text(dataset), backend: text(backend), seed: plain(seed),
    status: {type: "text", value: status, render: function (r, td) {
      var s = status(r), known = ["ok", "failed", "oom", "timeout", "skipped"].indexOf(s) >= 0;
      var pill = td.appendChild(el("span", s || "?", "pill st-" + (known ? s : "other")));
      var failed = MEMBERS[r].filter(function (i) { return D.errors[i]; })[0];
      if (s !== "ok" && failed !== undefined) { pill.title = D.errors[failed]; }
      if (isContended(r)) {
        td.appendChild(document.createTextNode(" "));
        td.appendChild(el("span", "contended", "contended")).title = contendedWhy(r);
      }
    }},
    speedup: {type: "num", value: row("speedup"), render: function (r, td) {
      num("speedup", times, 1.0).render(r, td);
      if (A.lo[r] !== null) { td.title = "95% interval from the raw samples: " + times(A.lo[r]) + " to " + times(A.hi[r]); }
    }},
    gate: {type: "num", value: row("gate"), render: function (r, td) {
      var g = A.gate[r];
      if (g === null) { td.textContent = "\u2014"; td.className = "null"; return; }
      var s = td.appendChild(el("span", g ? "pass" : "fail", g ? "gate-pass" : "gate-fail"));
      if (!g) { s.title = "short of the suite's accuracy_gate (its quality metric, agreement or cosine) in a run behind this row"; td.className = "worse"; }
    }},
    quality: {type: "num", value: function (r) { return given("quality", r); }, render: function (r, td) {
      var v = given("quality", r);
      if (v === null) { td.textContent = "\u2014"; td.className = "num null"; return; }
      num("quality", sig4).render(r, td);
      td.insertBefore(document.createTextNode(metricOf(r) + " "), td.firstChild);
      td.title = (td.title ? td.title + "; " : "") + metricOf(r) + ": " + (lowerBetter(r) ? "lower" : "higher") + " is better";
    }},
    dq: {type: "num", value: function (r) { return given("dq", r); }, render: function (r, td) {
      var v = given("dq", r);
      if (v === null) { td.textContent = "\u2014"; td.className = "num null"; return; }
      num("dq", sig3signed).render(r, td);
      var loss = qualityLoss(r);
      td.className = "num" + (loss !== null && loss > 1e-12 ? " worse" : "");
      td.title = metricOf(r) + " minus the baseline's" + (lowerBetter(r) ? " (lower is better: a rise is worse)" : "");
    }},
    noisy: {type: "num", value: row("noisy"), render: function (r, td) {
      var n = A.noisy[r];
      td.className = "noisy-col" + (n === null ? " null" : "");
      if (n === null) { td.textContent = "\u2014"; return; }
      if (n) { td.appendChild(el("span", "noisy", "noisy")).title = "timing spread (IQR) is over 10% of its median in a run behind this row"; }
    }}
  };
  // drawn their own way, but shown only where the data has them (another task's quality)
  var DRAWN_FIGURES = {quality: true, dq: true};
  var SPEC = {};  // the spec of each column, by key
  D.columns.forEach(function (c) { SPEC[c.key] = c; });
  var COLUMNS = [
    ["runs", {type: "num", value: function (r) { return MEMBERS[r].length; }, render: function (r, td) {
      var n = MEMBERS[r].length, open = !!state.open[r];
      var b = td.appendChild(el("button", (open ? "\u25be" : "\u25b8") + (n > 1 ? " " + n + " runs" : ""), "runs"));
      b.type = "button";
      b.setAttribute("aria-expanded", open ? "true" : "false");
      b.title = (open ? "hide" : "show") + " the run" + (n > 1 ? "s" : "") + " behind this row and their figures";
      b.addEventListener("click", function () { state.open[r] = !state.open[r]; update(); });
      if (n === 1) { td.appendChild(document.createTextNode(" ")); td.appendChild(runLink(A.run[r], "run-link")); }
      var note = outNote(r);
      if (note) { td.appendChild(el("span", note, "ci out")); }
    }}],
    ["machine", {type: "text", value: function (r) { return M[machineOf(r)].short; }, render: function (r, td) {
      var m = M[machineOf(r)], b = el("button", null, "machine");
      b.type = "button";
      b.title = m.label + ": show the machine and software of this row's latest run";
      b.appendChild(el("span", null, "chip")).style.background = m.colour;
      b.appendChild(document.createTextNode(m.short));
      b.addEventListener("click", function () { openEnv(A.run[r]); });
      td.appendChild(b);
    }}]
  ].concat(D.columns.filter(function (c) {
    // a figure the data does not carry (a language model's, in a suite without one) has no column
    var drawn = SPECIAL[c.key] !== undefined && !(c.key in DRAWN_FIGURES);
    return drawn || (A[c.key] || []).some(function (v) { return v !== null && v !== undefined; });
  }).map(function (c) {
    var col = SPECIAL[c.key] || num(c.key, FORMATS[c.format] || fmtFloat, c.worse === null ? undefined : c.worse);
    return [c.label, col, c.key === "ref" ? REF_TITLE : c.title || undefined];
  }));

  // --- the runs behind a row ----------------------------------------------------------------
  function recNum(key, fmt) {
    return function (i) { var v = R[key][i]; return v === null ? "\u2014" : fmt(v); };
  }
  function specNum(key, label) { return [label, recNum(key, FORMATS[SPEC[key].format] || fmtFloat)]; }
  var RUN_COLUMNS = [
    ["started", function (i) { return RUNS.started[R.run[i]] || "?"; }],
    specNum("p50", "p50 ms"),
    ["speedup (95% interval)", function (i) {
      var v = R.speedup[i];
      if (v === null) { return "\u2014"; }
      return times(v) + (R.lo[i] === null ? "" : " [" + times(R.lo[i]) + "\u2013" + times(R.hi[i]) + "]");
    }],
    specNum("ref", "vs reference"), specNum("acc", "accuracy"), specNum("dacc", "\u0394 accuracy"),
    specNum("cos", "cosine"), specNum("size", "size ratio"), specNum("p99", "p99 ms")
  ];
  function detailRow(r) {
    var tr = el("tr", null, "runs-detail"), td = tr.appendChild(el("td"));
    tr.dataset.detail = String(r);
    td.colSpan = COLUMNS.length;
    var n = MEMBERS[r].length, note = outNote(r);
    td.appendChild(el("p", n + " run" + (n > 1 ? "s" : "") + " of this cell on " + M[machineOf(r)].short + ", newest "
      + "first. The row above is the median of " + (A.n[r] === 1 ? "the one " : "the " + A.n[r] + " ")
      + (isContended(r) ? "contended" : "clean") + " run" + (A.n[r] === 1 ? "" : "s") + (note ? "; " + note : "")
      + ".", "note"));
    var t = td.appendChild(el("table", null, "plain runs-of-row")), hr = t.appendChild(el("thead")).appendChild(el("tr"));
    ["run", "status", "in the median"].concat(RUN_COLUMNS.map(function (c) { return c[0]; })).forEach(function (h) {
      hr.appendChild(el("th", h));
    });
    var body = t.appendChild(el("tbody"));
    MEMBERS[r].forEach(function (i) {
      var rr = body.appendChild(el("tr")), why = leftOut(i);
      rr.dataset.record = String(i);
      if (why) { rr.className = "left-out"; }
      rr.appendChild(el("td")).appendChild(runLink(R.run[i], "run-link"));
      var st = rr.appendChild(el("td")), s = recStatus(i);
      var pill = st.appendChild(el("span", s || "?", "pill st-" + (["ok", "failed", "timeout", "skipped"].indexOf(s) >= 0 ? s : "other")));
      if (D.errors[i]) { pill.title = D.errors[i]; }
      if (R.cont[i]) {
        st.appendChild(document.createTextNode(" "));
        st.appendChild(el("span", "contended", "contended")).title = D.reasons[i] || "contended";
      }
      if (R.noisy[i]) { st.appendChild(document.createTextNode(" ")); st.appendChild(el("span", "noisy", "noisy")); }
      rr.appendChild(el("td", why ? "no: " + why : "yes"));
      RUN_COLUMNS.forEach(function (c) { rr.appendChild(el("td", c[1](i), c[0] === "started" ? "" : "num")); });
    });
    return tr;
  }

  // --- filters ----------------------------------------------------------------------------
  var FILTERS = [
    ["model", model], ["dataset", dataset], ["backend", backend], ["kind", kind],
    ["machine", function (r) { return M[machineOf(r)].short; }], ["batch", batch], ["status", status]
  ];
  var state = {filters: {}, search: "", sort: null, dir: 1, limit: PAGE, open: {}, contended: false};
  var filterBox = document.getElementById("filters");
  FILTERS.forEach(function (f) {
    var seen = {}, values = [];
    for (var r = 0; r < N; r++) {
      var v = f[1](r), k = String(v);
      if (!(k in seen)) { seen[k] = 1; values.push(v); }
    }
    values.sort(function (a, b) {
      return typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
    });
    var lab = filterBox.appendChild(el("label", f[0] + " ")), sel = lab.appendChild(el("select"));
    sel.dataset.filter = f[0];
    sel.appendChild(el("option", "all (" + values.length + ")")).value = "";
    values.forEach(function (v) { sel.appendChild(el("option", String(v))).value = String(v); });
    sel.addEventListener("change", function () { state.filters[f[0]] = sel.value; state.limit = PAGE; update(); });
  });
  var search = filterBox.appendChild(el("label", "method or params contains ")).appendChild(el("input"));
  search.type = "search";
  search.id = "search";
  search.addEventListener("input", function () { state.search = search.value.toLowerCase(); state.limit = PAGE; update(); });
  var contendedBox = document.getElementById("show-contended"), nContended = 0;
  for (var c0 = 0; c0 < N; c0++) { nContended += isContended(c0) ? 1 : 0; }
  document.getElementById("contended-count").textContent = nContended
    ? "(" + nContended + " row" + (nContended > 1 ? "s" : "") + " whose every run was contended)" : "(none here)";
  contendedBox.checked = false;
  contendedBox.addEventListener("change", function () {
    state.contended = contendedBox.checked;
    state.limit = PAGE;
    update();
    redrawFigures();
  });

  var hiddenContended = 0;
  function matching() {
    var out = [], active = FILTERS.filter(function (f) { return state.filters[f[0]]; });
    hiddenContended = 0;
    for (var r = 0; r < N; r++) {
      var ok = true;
      for (var i = 0; i < active.length && ok; i++) { ok = String(active[i][1](r)) === state.filters[active[i][0]]; }
      if (ok && state.search) { ok = label(r).toLowerCase().indexOf(state.search) >= 0; }
      if (ok && !state.contended && isContended(r)) { hiddenContended += 1; ok = false; }
      if (ok) { out.push(r); }
    }
    return out;
  }

  // --- table --------------------------------------------------------------------------------
  var table = document.getElementById("board"), thead = table.tHead, tbody = table.tBodies[0];
  var headRow = thead.appendChild(el("tr"));
  COLUMNS.forEach(function (c, i) {
    var th = headRow.appendChild(el("th", c[0]));
    if (c[2]) { th.title = c[2]; }
    th.tabIndex = 0;
    th.dataset.col = String(i);
    th.appendChild(el("span", "", "arrow"));
    function sortBy() {
      state.dir = state.sort === i ? -state.dir : 1;
      state.sort = i;
      update();
    }
    th.addEventListener("click", sortBy);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(); } });
  });

  function sorted(rows) {
    if (state.sort === null) { return rows; }
    var col = COLUMNS[state.sort][1], dir = state.dir, keys = {};
    rows.forEach(function (r) {
      var v = col.value(r);
      keys[r] = v === null || v === undefined || v === "" ? null : col.type === "num" ? v : String(v).toLowerCase();
    });
    return rows.slice().sort(function (a, b) {
      var x = keys[a], y = keys[b];
      if (x === null || y === null) { return (x === null) - (y === null) || a - b; }  // empty values last either way
      return (x < y ? -dir : x > y ? dir : 0) || a - b;
    });
  }

  function renderRow(r) {
    var tr = el("tr");
    tr.dataset.row = String(r);
    var cls = [];
    if (isBaseline(r)) { cls.push("baseline"); }
    if (status(r) !== "ok") { cls.push("not-ok"); }
    if (A.gate[r] === 0) { cls.push("gate-failed"); }
    if (A.noisy[r] === 1) { cls.push("is-noisy"); }
    if (isContended(r)) { cls.push("is-contended"); }
    tr.className = cls.join(" ");
    COLUMNS.forEach(function (c) { c[1].render(r, tr.appendChild(el("td"))); });
    return tr;
  }

  var TIMED = ["p50 ms", "p99 ms", "speedup (\u00d7)", "vs reference (\u00d7)"];
  var countLine = document.getElementById("row-count"), more = document.getElementById("more");
  var warning = document.getElementById("machine-warning");
  more.addEventListener("click", function () { state.limit += PAGE; update(); });

  function update() {
    var rows = sorted(matching()), shown = rows.slice(0, state.limit);
    var body = document.createElement("tbody");
    shown.forEach(function (r) {
      body.appendChild(renderRow(r));
      if (state.open[r]) { body.appendChild(detailRow(r)); }
    });
    table.replaceChild(body, tbody);
    tbody = body;
    headRow.querySelectorAll("th").forEach(function (th, i) {
      var on = state.sort === i;
      th.lastChild.textContent = on ? (state.dir > 0 ? "\u25b2" : "\u25bc") : "";
      if (on) { th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending"); } else { th.removeAttribute("aria-sort"); }
    });
    countLine.textContent = rows.length ? "Showing " + (shown.length === rows.length ? "all " + rows.length
      : "the first " + shown.length + " of " + rows.length) + " matching rows (" + N + " in all)."
      : "No row matches the filters (" + N + " rows in all).";
    if (hiddenContended) {
      countLine.textContent += " " + hiddenContended + " contended row" + (hiddenContended > 1 ? "s are" : " is")
        + " hidden (\u201cshow contended rows\u201d shows " + (hiddenContended > 1 ? "them" : "it") + ").";
    }
    more.hidden = shown.length >= rows.length;
    var machines = {};
    rows.forEach(function (r) { machines[machineOf(r)] = 1; });
    var n = Object.keys(machines).length, timed = state.sort !== null && TIMED.indexOf(COLUMNS[state.sort][0]) >= 0;
    warning.hidden = n < 2 || !timed;
    warning.textContent = warning.hidden ? "" : "Ranked by " + COLUMNS[state.sort][0] + " across " + n + " machines: "
      + "latency and speedup are only comparable within one machine (the machine column). Choose one under "
      + "\u201cmachine\u201d to rank them on equal terms.";
    if (n > 1) { countLine.textContent += " They come from " + n + " machines."; }
    best(rows);
  }

  // --- best under constraints ---------------------------------------------------------------
  function figure(key) { return function (r) { return A[key][r]; }; }
  var OBJECTIVES = {
    acc: {value: quality, sign: function (r) { return lowerBetter(r) ? -1 : 1; }, show: "quality"},
    p50: {value: figure("p50"), sign: function () { return -1; }, show: "p50 latency"},
    speedup: {value: figure("speedup"), sign: function () { return 1; }, show: "speedup"},
    size: {value: figure("size"), sign: function () { return 1; }, show: "size ratio"},
    ref: {value: figure("ref"), sign: function () { return 1; }, show: "speedup vs the reference baseline"}
  };
  // one metric's scores rank against each other; two rows scored by different metrics never do
  function sameMetric(a, b) { return metricOf(a) === metricOf(b); }
  function bound(id) {
    var v = document.getElementById(id).value;
    return v === "" ? null : parseFloat(v);
  }
  function best(rows) {
    var obj = OBJECTIVES[document.getElementById("best-objective").value];
    var maxP50 = bound("best-max-p50"), maxDrop = bound("best-max-drop"), minSpeedup = bound("best-min-speedup");
    var minAgree = bound("best-min-agreement"), minCos = bound("best-min-cosine");
    var gate = document.getElementById("best-gate").checked, quiet = document.getElementById("best-quiet").checked;
    var winners = {}, candidates = 0, metrics = {};
    function better(a, b) {  // objective, then faster, then better quality (of one metric), then the newer row
      var d = obj.sign(a) * (obj.value(a) - obj.value(b));
      if (d) { return d > 0; }
      var pa = A.p50[a], pb = A.p50[b];
      if (pa !== pb && pa !== null && pb !== null) { return pa < pb; }
      var qa = quality(a), qb = quality(b);
      if (qa !== qb && qa !== null && qb !== null && sameMetric(a, b)) { return (lowerBetter(a) ? -1 : 1) * (qa - qb) > 0; }
      return a < b;
    }
    rows.forEach(function (r) {
      if (status(r) !== "ok" || obj.value(r) === null || obj.value(r) === undefined) { return; }
      if (maxP50 !== null && !(A.p50[r] !== null && A.p50[r] <= maxP50)) { return; }
      if (maxDrop !== null && !(qualityLoss(r) !== null && qualityLoss(r) <= maxDrop + 1e-12)) { return; }
      if (minSpeedup !== null && !(A.speedup[r] !== null && A.speedup[r] >= minSpeedup)) { return; }
      if (minAgree !== null && !(A.agree[r] !== null && A.agree[r] >= minAgree - 1e-12)) { return; }
      if (minCos !== null && !(A.cos[r] !== null && A.cos[r] >= minCos - 1e-12)) { return; }
      if (gate && A.gate[r] === 0) { return; }
      if (quiet && A.noisy[r] === 1) { return; }
      candidates += 1;
      metrics[metricOf(r)] = true;
      var m = machineOf(r);
      if (!(m in winners) || better(r, winners[m])) { winners[m] = r; }
    });
    var out = document.getElementById("best-result");
    out.textContent = "";
    var scored = Object.keys(metrics);
    if (obj.show === "quality" && scored.length > 1) {
      out.appendChild(el("p", "The rows that meet these bounds are scored by different metrics (" + scored.join(", ")
        + "), which do not rank against each other: choose one dataset under the filters to rank them by quality.",
        "answer none"));
      return;
    }
    var ms = Object.keys(winners);
    if (!ms.length) {
      out.appendChild(el("p", "No row of the " + rows.length + " selected meets these bounds.", "answer none"));
      return;
    }
    var shown = obj.show === "quality" ? metricOf(winners[ms[0]]) : obj.show;
    out.appendChild(el("p", candidates + " of the " + rows.length + " selected rows meet the bounds. "
      + (obj.sign(winners[ms[0]]) < 0 ? "Lowest " : "Highest ") + shown + (ms.length > 1 ? ", one answer per machine "
      + "(their latencies are not comparable):" : ":")));
    var list = out.appendChild(el("ul"));
    ms.forEach(function (m) {
      var r = winners[m], li = list.appendChild(el("li", null, "answer"));
      li.dataset.row = String(r);
      var mm = M[m], chip = li.appendChild(el("span", null, "chip"));
      chip.style.background = mm.colour;
      li.appendChild(el("span", mm.short + ": "));
      li.appendChild(el("b", label(r)));
      var q = quality(r), dq = qualityDelta(r), other = given("qm", r) !== null;
      li.appendChild(el("span", " on " + where(r) + " \u2014 " + metricOf(r) + " "
        + (q === null ? "\u2014" : other ? sig4(q) : q.toFixed(4))
        + ", \u0394 " + (dq === null ? "\u2014" : other ? sig3signed(dq) : signed(dq)) + ", p50 "
        + (A.p50[r] === null ? "\u2014" : fmtMs(A.p50[r]) + " ms") + ", speedup "
        + (A.speedup[r] === null ? "\u2014" : times(A.speedup[r])) + ", vs reference "
        + (A.ref[r] === null ? "\u2014" : times(A.ref[r])) + ", size ratio "
        + (A.size[r] === null ? "\u2014" : times(A.size[r])) + ", cosine "
        + (A.cos[r] === null ? "\u2014" : A.cos[r].toFixed(4)) + " \u00b7 "
        + (A.n[r] > 1 ? "median of " + A.n[r] + " runs, latest run " : "run ")));
      li.appendChild(el("a", RUNS.id[A.run[r]])).href = "../" + RUNS.href[A.run[r]] + "/report.html";
      if (isContended(r)) {
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", "contended", "contended")).title = contendedWhy(r);
      }
    });
  }
  document.getElementById("best-form").addEventListener("submit", function (e) { e.preventDefault(); });
  document.getElementById("best-form").addEventListener("input", function () { update(); });
  document.getElementById("best-form").addEventListener("change", function () { update(); });

  // --- the machine panel --------------------------------------------------------------------
  var dialog = document.getElementById("env-dialog");
  function openEnv(run) {
    var m = M[RUNS.machine[run]];
    document.getElementById("env-title").textContent = "Machine " + m.short + " \u00b7 run " + RUNS.id[run];
    var links = document.getElementById("env-links");
    links.textContent = "";
    if (RUNS.hasEnv[run]) {
      links.appendChild(el("a", "env.json")).href = "../" + RUNS.href[run] + "/env.json";
      links.appendChild(document.createTextNode(" \u00b7 "));
    } else {
      links.appendChild(document.createTextNode("this run has no env.json \u00b7 "));
    }
    links.appendChild(el("a", "run report")).href = "../" + RUNS.href[run] + "/report.html";
    links.appendChild(document.createTextNode(" \u00b7 started " + (RUNS.started[run] || "?")));
    var dl = document.getElementById("env-facts");
    dl.textContent = "";
    D.envs[RUNS.env[run]].forEach(function (kv) { dl.appendChild(el("dt", kv[0])); dl.appendChild(el("dd", kv[1])); });
    if (typeof dialog.showModal === "function") { dialog.showModal(); } else { dialog.setAttribute("open", ""); }
  }

  update();

  // --- figures ------------------------------------------------------------------------------
  var members = {};
  Object.keys(D.member).forEach(function (k) {
    var by = {}, col = D.member[k];
    for (var r = 0; r < N; r++) { if (col[r]) { (by[col[r]] = by[col[r]] || []).push(r); } }
    members[k] = by;
  });
  var KIND_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                      "#bcbd22", "#17becf"];
  var kindNames = [];
  for (var r0 = 0; r0 < N; r0++) { if (kindNames.indexOf(kind(r0)) < 0) { kindNames.push(kind(r0)); } }
  kindNames.sort();
  function kindColour(k) { return KIND_COLOURS[kindNames.indexOf(k) % KIND_COLOURS.length]; }
  function hover(r) {
    return esc(label(r)) + "<br>" + esc(where(r)) + "<br>" + esc(runsSaid(r)) + " on " + esc(M[machineOf(r)].short)
      + (isContended(r) ? "<br>contended: every run of it was disturbed by other processes" : "");
  }
  function symbols(rs) {
    return rs.map(function (r) { return isBaseline(r) ? (isContended(r) ? "star-open" : "star") : isContended(r) ? "x" : "circle"; });
  }
  function groupBy(rows, key) {
    var groups = {}, order = [];
    rows.forEach(function (r) {
      var k = key(r);
      if (!(k in groups)) { groups[k] = []; order.push(k); }
      groups[k].push(r);
    });
    return order.map(function (k) { return [k, groups[k]]; });
  }
  // A row of several runs: the range of their speedups; of one run: its 95% interval from the raw samples.
  function bar(r) { return range("speedup", r) || (A.lo[r] === null ? null : [A.lo[r], A.hi[r]]); }
  function errorBars(rows) {
    var any = rows.some(function (r) { return bar(r) !== null; });
    return {type: "data", symmetric: false, visible: any, thickness: 1, width: 2,
            array: rows.map(function (r) { var b = bar(r); return b === null ? null : b[1] - A.speedup[r]; }),
            arrayminus: rows.map(function (r) { var b = bar(r); return b === null ? null : A.speedup[r] - b[0]; })};
  }
  var AXIS = {gridcolor: "#e5e5e5", zerolinecolor: "#ccc", linecolor: "#999", automargin: true};
  function layout(extra) {
    var out = Object.assign({height: 420, margin: {l: 64, r: 20, t: 20, b: 60}, hovermode: "closest",
                             paper_bgcolor: "#fff", plot_bgcolor: "#fff"}, extra);
    out.xaxis = Object.assign({}, AXIS, extra.xaxis);
    out.yaxis = Object.assign({}, AXIS, extra.yaxis);
    return out;
  }

  // a quality figure's y: top-1 accuracy, or the metric its rows are scored by, with its direction
  function yTitle(spec) {
    return spec.metric ? esc(spec.metric) + " (test split; " + (spec.lower ? "lower" : "higher") + " is better)"
      : "top-1 accuracy (test split)";
  }
  var BUILD = {
    fal: function (spec, rows) {
      var traces = [];
      groupBy(rows, machineOf).forEach(function (g) {
        var m = M[g[0]], rs = g[1];
        traces.push({type: "scatter", mode: "markers", name: esc(m.short), legendgroup: "m" + g[0],
                     x: rs.map(row("p50")), y: rs.map(quality), text: rs.map(hover), hoverinfo: "text",
                     marker: {color: m.colour, size: 9, opacity: 0.8, symbol: symbols(rs)}});
        var fronts = state.contended && spec.frontsAll ? spec.frontsAll : spec.fronts, front = fronts[String(g[0])] || [];
        traces.push({type: "scatter", mode: "lines", name: esc(m.short) + " Pareto front", legendgroup: "m" + g[0],
                     x: front.map(row("p50")), y: front.map(quality), hoverinfo: "skip",
                     line: {shape: "hv", dash: "dash", color: m.colour}});
      });
      return [traces, layout({xaxis: {type: "log", title: {text: "p50 latency per call (ms, log scale)"}},
                               yaxis: {title: {text: yTitle(spec)}}})];
    },
    fsp: function (spec, rows) {
      var traces = groupBy(rows, machineOf).map(function (g) {
        var m = M[g[0]], rs = g[1];
        return {type: "scatter", mode: "markers", name: esc(m.short), x: rs.map(function (r) { return esc(label(r)); }),
                y: rs.map(row("speedup")), error_y: errorBars(rs), text: rs.map(hover), hoverinfo: "text+y",
                marker: {color: m.colour, size: 8, opacity: 0.85, symbol: symbols(rs)}};
      });
      return [traces, layout({scattermode: "group", xaxis: {type: "category", automargin: true},
                               yaxis: {type: "log", title: {text: "speedup over its run's baseline (\u00d7)"}},
                               shapes: [{type: "line", xref: "paper", x0: 0, x1: 1, y0: 1, y1: 1,
                                         line: {color: "#555", dash: "dash", width: 1}}]})];
    },
    fre: function (spec, rows) {
      var lo = Infinity, hi = -Infinity;
      rows.forEach(function (r) {
        [A.theo[r], A.speedup[r]].concat(bar(r) || []).forEach(function (v) {
          if (v !== null && v > 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        });
      });
      var traces = groupBy(rows, kind).map(function (g) {
        var rs = g[1];
        return {type: "scatter", mode: "markers", name: esc(g[0] || "(no kind)"), x: rs.map(row("theo")),
                y: rs.map(row("speedup")), error_y: errorBars(rs), text: rs.map(hover), hoverinfo: "text+x+y",
                marker: {color: kindColour(g[0]), size: 8, opacity: 0.8, symbol: symbols(rs)}};
      });
      traces.push({type: "scatter", mode: "lines", name: "realized = theoretical", x: [lo / 1.2, hi * 1.2],
                   y: [lo / 1.2, hi * 1.2], hoverinfo: "skip", line: {color: "#555", dash: "dash", width: 1}});
      return [traces, layout({xaxis: {type: "log", title: {text: "theoretical speedup (FLOPs skipping zero weights, \u00d7)"}},
                               yaxis: {type: "log", title: {text: "measured speedup (p50 latency, \u00d7)"}}})];
    },
    ffs: function (spec, rows) {
      function distance(r) { return Math.max(1 - A.cos[r], 1e-9); }
      var traces = groupBy(rows, kind).map(function (g) {
        var rs = g[1];
        return {type: "scatter", mode: "markers", name: esc(g[0] || "(no kind)"), x: rs.map(row("speedup")),
                y: rs.map(distance), text: rs.map(function (r) {
                  return hover(r) + "<br>cosine " + A.cos[r].toFixed(6)
                    + (A.agree[r] === null ? "" : " \u00b7 agreement " + A.agree[r].toFixed(4));
                }), hoverinfo: "text+x", marker: {color: kindColour(g[0]), size: 8, opacity: 0.8, symbol: symbols(rs)}};
      });
      return [traces, layout({xaxis: {type: "log", title: {text: "measured speedup (p50 latency, \u00d7)"}},
                               yaxis: {type: "log", title: {text: "1 \u2212 cosine to the baseline's outputs"}}})];
    },
    fsa: function (spec, rows) {
      var traces = groupBy(rows, kind).map(function (g) {
        var rs = g[1];
        return {type: "scatter", mode: "markers", name: esc(g[0] || "(no kind)"), x: rs.map(row("bytes")),
                y: rs.map(quality), text: rs.map(function (r) { return hover(r) + "<br>" + esc(fmtBytes(A.bytes[r])); }),
                hoverinfo: "text+y", marker: {color: kindColour(g[0]), size: 8, opacity: 0.8, symbol: symbols(rs)}};
      });
      var front = state.contended && spec.frontAll ? spec.frontAll : spec.front;
      traces.push({type: "scatter", mode: "lines", name: "Pareto front", x: front.map(row("bytes")),
                   y: front.map(quality), hoverinfo: "skip", line: {shape: "hv", dash: "dash", color: "#555"}});
      return [traces, layout({xaxis: {type: "log", title: {text: "model size (bytes, log scale)"}},
                               yaxis: {title: {text: yTitle(spec)}}})];
    }
  };

  function specOf(kindKey, id) {
    return D.figures[kindKey].filter(function (s) { return s.id === id; })[0];
  }
  // A figure's traces and layout: contended rows are drawn only while "show contended rows" is ticked
  // (and then as x, or an open star), and the fronts follow the same choice.
  function build(div) {
    var k = div.dataset.kind, spec = specOf(k, parseInt(div.dataset.id, 10)), all = members[k][spec.id] || [];
    var rows = all.filter(function (r) { return state.contended || !isContended(r); });
    var built = BUILD[k](spec, rows);
    if (!rows.length && all.length) {
      built[1].annotations = [{text: "every point here is contended: tick \u201cshow contended rows\u201d to draw them",
                               xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false}];
    }
    return built;
  }
  var drawn = [];
  function redrawFigures() {
    drawn.forEach(function (div) {
      var built = build(div);
      Plotly.react(div, built[0], built[1], {displaylogo: false, responsive: true}).then(function () {
        div.dataset.contended = state.contended ? "1" : "0";
      });
    });
  }

  function loadPlotly() {
    if (window.Plotly) { return Promise.resolve(); }
    var packed = document.getElementById("plotly-gz");
    if (!packed) { return Promise.reject(new Error("plotly.js did not load (the page asked for it from a CDN: offline?)")); }
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser cannot unpack the plotly.js inside this page (no DecompressionStream); "
                                      + "publish with --plotly cdn for older browsers"));
    }
    var bin = atob(packed.textContent.trim()), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(function (code) {
      var s = document.createElement("script");
      s.textContent = code;
      document.head.appendChild(s);
    });
  }

  var plots = Array.prototype.slice.call(document.querySelectorAll("div.plot[data-kind]"));
  if (!plots.length && !document.querySelector("script[data-figure]")) {
    document.body.dataset.figures = "done";
    return;
  }
  loadPlotly().then(function () {
    drawJsonFigures();  // the training figures, built by the publisher (harness.report_training)
    // One figure per idle moment, those on screen first: the table stays responsive while thousands
    // of points draw below it.
    var queue = plots.slice(), idle = window.requestIdleCallback
      ? function (f) { window.requestIdleCallback(f, {timeout: 1000}); } : function (f) { setTimeout(f, 0); };
    if (window.IntersectionObserver) {
      var seen = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) {
          var at = queue.indexOf(e.target);
          if (e.isIntersecting && at > 0) { queue.unshift(queue.splice(at, 1)[0]); }
        });
      }, {rootMargin: "300px"});
      plots.forEach(function (div) { seen.observe(div); });
    }
    function next() {
      if (!queue.length) { document.body.dataset.figures = "done"; return; }
      var div = queue.shift(), built = build(div), shown = state.contended;
      Plotly.newPlot(div, built[0], built[1], {displaylogo: false, responsive: true}).then(function () {
        div.dataset.drawn = "1";
        div.dataset.contended = shown ? "1" : "0";
        drawn.push(div);
        if (shown !== state.contended) { redrawFigures(); }  // the box changed while it drew
        idle(next);
      });
    }
    idle(next);
  }).catch(function (err) {
    plots.forEach(function (div) { div.appendChild(el("p", "Figure not drawn: " + err.message, "plot-note")); });
    document.body.dataset.figures = "failed";
    console.error(err);
  });
})();
