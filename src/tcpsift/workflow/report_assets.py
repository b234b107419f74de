"""The report page's style and script (inline: the page fetches nothing)."""
from __future__ import annotations

CSS = r"""
:root { --fg:#1d2430; --muted:#5b6577; --line:#dde2ea; --bg:#fff; --head:#f3f5f9;
        --accent:#1f5fbf; --c2s:#1f5fbf; --s2c:#b35c00; --bad:#fde8e8; --win:#efe6fb;
        --warn:#fff4d6; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:var(--bg);
       font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
header { padding:18px 28px 10px; border-bottom:1px solid var(--line); background:var(--head); }
h1 { font-size:22px; margin:0 0 4px; word-break:break-all; }
h2 { font-size:18px; margin:28px 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
h3 { font-size:15px; margin:0 0 6px; }
.sub, .note { color:var(--muted); margin:4px 0; }
.note { font-size:13px; }
nav a { margin-right:14px; color:var(--accent); text-decoration:none; font-weight:600; }
nav a:hover, a:hover { text-decoration:underline; }
a { color:var(--accent); }
main { padding:0 28px 40px; max-width:1600px; }
code { font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; background:#eef1f6;
       padding:1px 4px; border-radius:3px; }
.cards { display:flex; gap:12px; flex-wrap:wrap; margin:8px 0 14px; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 16px; min-width:150px; }
.card .v { font-size:22px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
table { border-collapse:collapse; font-variant-numeric:tabular-nums; margin:6px 0; }
th, td { padding:4px 9px; border-bottom:1px solid var(--line); text-align:left;
         white-space:nowrap; vertical-align:top; }
thead th { background:var(--head); font-weight:600; position:sticky; top:0; }
tbody tr:nth-child(even) { background:#fafbfd; }
td.n, th.n { text-align:right; }
.warning { color:#a40000; font-weight:600; }
.controls { display:flex; gap:14px; align-items:center; flex-wrap:wrap; margin:6px 0; }
.controls input { font:inherit; padding:5px 8px; border:1px solid #b8c0cc; border-radius:4px; }
.controls button, .controls select { font:inherit; padding:2px 8px; }
#count { font-weight:600; }
.table-wrap { overflow:auto; max-height:75vh; border:1px solid var(--line); }
#conns { font-size:13px; margin:0; }
#conns th, #conns td { padding:3px 7px; }
#conns th { cursor:pointer; user-select:none; }
#conns td:first-child, #conns th:first-child { position:sticky; left:0; background:#fff;
  box-shadow:1px 0 0 var(--line); }
#conns thead th:first-child { background:var(--head); z-index:1; }
#conns tbody tr:nth-child(even) td:first-child { background:#fafbfd; }
#conns th.sorted-asc::after { content:" ▲"; font-size:10px; }
#conns th.sorted-desc::after { content:" ▼"; font-size:10px; }
#conns td.hot { background:var(--bad); }
article.conn { border:1px solid var(--line); border-radius:6px; padding:14px 16px; margin:16px 0; }
.why { margin:2px 0 8px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:2px 14px; margin:6px 0 10px; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; font-variant-numeric:tabular-nums; }
.plots { display:grid; grid-template-columns:repeat(auto-fill,minmax(520px,1fr)); gap:10px; }
figure.plot { margin:0; }
figure.plot svg, figure.plot img { width:100%; height:auto; }
details summary { cursor:pointer; font-weight:600; margin:8px 0; }
.ladder-wrap { max-height:520px; overflow:auto; border:1px solid var(--line); }
table.ladder { font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; margin:0; }
table.ladder td { padding:1px 8px; border:0; }
table.ladder td:nth-child(-n+2), table.ladder td:nth-child(n+5):nth-child(-n+8) { text-align:right; }
tr.c2s td.arrow { color:var(--c2s); }
tr.s2c td.arrow { color:var(--s2c); padding-left:26px; }
tr.v-bad { background:var(--bad) !important; }
tr.v-win { background:var(--win) !important; }
tr.v-warn { background:var(--warn) !important; }
tr.gap td { color:var(--muted); text-align:center !important; font-style:italic; }
@media print { .controls, nav { display:none; } .table-wrap, .ladder-wrap { max-height:none; } }
"""

# the first script: records errors of everything after it where the test (and a curious
# reader's DOM inspector) can see them
ERROR_HOOK = r"""
document.documentElement.setAttribute("data-errors", "0");
window.addEventListener("error", function (e) {
  var root = document.documentElement;
  root.setAttribute("data-errors", String(Number(root.getAttribute("data-errors")) + 1));
  root.setAttribute("data-last-error", String(e.message));
});
"""

SCRIPT = r"""
(function () {
  "use strict";
  var spec = JSON.parse(document.getElementById("conn-data").textContent);
  var n = spec.rows, data = spec.data, byKey = {};
  spec.columns.forEach(function (c) { byKey[c.key] = c; });
  var cols = spec.columns.filter(function (c) { return !c.hidden; });

  function value(key, i) {
    var d = data[key];
    if (d && d.dict) { var code = d.codes[i]; return code === null ? null : d.dict[code]; }
    return d[i];
  }
  var nf = new Intl.NumberFormat("en-US");
  var nf3 = new Intl.NumberFormat("en-US", {minimumFractionDigits: 3, maximumFractionDigits: 3});
  function bytes(v) {
    var units = [["GB", 1e9], ["MB", 1e6], ["kB", 1e3]];
    for (var k = 0; k < units.length; k++) {
      if (v >= units[k][1]) { return nf.format(Math.round(v / units[k][1] * 100) / 100) + " " + units[k][0]; }
    }
    return v + " B";
  }
  function format(kind, v) {
    if (v === null || v === undefined) { return "–"; }
    if (kind === "id") { return String(v); }
    if (kind === "int") { return nf.format(v); }
    if (kind === "ms") { return nf3.format(v); }
    if (kind === "s") { return nf3.format(v / 1000); }
    if (kind === "bytes") { return bytes(v); }
    return String(v);
  }
  var numeric = {id: 1, int: 1, ms: 1, s: 1, bytes: 1};
  function cellText(c, i) {
    var v = value(c.key, i);
    if (c.port && v !== null) {
      var port = value(c.port, i);
      return (v.indexOf(":") >= 0 ? "[" + v + "]" : v) + ":" + port;
    }
    return format(c.kind, v);
  }

  // the text a word of the filter is looked for in, per row (built on first use)
  var haystack = null;
  function buildHaystack() {
    var keys = ["stream", "client", "server", "state", "history", "ended"];
    haystack = new Array(n);
    for (var i = 0; i < n; i++) {
      var parts = [];
      for (var k = 0; k < keys.length; k++) { parts.push(cellText(byKey[keys[k]], i)); }
      haystack[i] = " " + parts.join(" ").toLowerCase() + " ";
    }
  }

  function parseFilter(text) {
    var tests = [], errors = [];
    text.trim().split(/\s+/).forEach(function (tok) {
      if (!tok) { return; }
      var m = /^([a-z_0-9]+)(>=|<=|!=|=|>|<)(.*)$/i.exec(tok);
      if (m && byKey[m[1].toLowerCase()]) {
        var col = byKey[m[1].toLowerCase()], op = m[2], arg = m[3];
        if (numeric[col.kind]) {
          var x = Number(arg);
          if (col.kind === "s") { x *= 1000; }
          if (isNaN(x)) { errors.push(tok); return; }
          tests.push(function (i) {
            var v = value(col.key, i);
            if (v === null) { return op === "!="; }
            switch (op) {
              case ">": return v > x; case "<": return v < x; case ">=": return v >= x;
              case "<=": return v <= x; case "=": return v === x; default: return v !== x;
            }
          });
        } else {
          var want = arg.toLowerCase();
          tests.push(function (i) {
            var v = value(col.key, i);
            var eq = v !== null && String(v).toLowerCase() === want;
            return op === "!=" ? !eq : (op === "=" ? eq : false);
          });
        }
      } else {
        if (haystack === null) { buildHaystack(); }
        var word = tok.toLowerCase();
        tests.push(function (i) { return haystack[i].indexOf(word) >= 0; });
      }
    });
    return {tests: tests, errors: errors};
  }

  var table = document.getElementById("conns");
  var thead = table.tHead, tbody = table.tBodies[0];
  var input = document.getElementById("filter"), count = document.getElementById("count");
  var pageLabel = document.getElementById("page"), sizeSel = document.getElementById("pagesize");
  var rows = [], sortKey = null, sortDesc = false, page = 0;
  var details = {};
  Array.prototype.forEach.call(document.querySelectorAll("article.conn"), function (a) {
    details[a.id] = true;
  });

  var tr = document.createElement("tr");
  cols.forEach(function (c) {
    var th = document.createElement("th");
    th.textContent = c.label;
    th.title = c.title + "  [filter key: " + c.key + "]";
    if (numeric[c.kind]) { th.className = "n"; }
    th.addEventListener("click", function () {
      if (sortKey === c.key) { sortDesc = !sortDesc; } else { sortKey = c.key; sortDesc = numeric[c.kind] === 1; }
      sortRows(); page = 0; render();
    });
    tr.appendChild(th);
  });
  thead.appendChild(tr);

  function sortRows() {
    if (sortKey === null) { return; }
    var key = sortKey, sign = sortDesc ? -1 : 1;
    var port = byKey[key].port;
    var keyed = rows.map(function (i) { return [value(key, i), i, port ? value(port, i) : 0]; });
    keyed.sort(function (a, b) {
      if (a[0] === b[0]) { return (a[2] - b[2]) * sign || a[1] - b[1]; }
      if (a[0] === null) { return 1; }
      if (b[0] === null) { return -1; }
      return (a[0] < b[0] ? -1 : 1) * sign;
    });
    rows = keyed.map(function (p) { return p[1]; });
    Array.prototype.forEach.call(thead.rows[0].cells, function (th, k) {
      th.classList.toggle("sorted-asc", cols[k].key === key && !sortDesc);
      th.classList.toggle("sorted-desc", cols[k].key === key && sortDesc);
    });
  }

  function applyFilter() {
    var f = parseFilter(input.value);
    rows = [];
    for (var i = 0; i < n; i++) {
      var ok = true;
      for (var t = 0; t < f.tests.length && ok; t++) { ok = f.tests[t](i); }
      if (ok) { rows.push(i); }
    }
    input.style.borderColor = f.errors.length ? "#c00" : "";
    input.title = f.errors.length ? "not understood: " + f.errors.join(" ") : "";
    sortRows(); page = 0; render();
  }

  function render() {
    var size = Number(sizeSel.value), pages = Math.max(1, Math.ceil(rows.length / size));
    page = Math.min(Math.max(page, 0), pages - 1);
    var start = page * size, end = Math.min(start + size, rows.length);
    var frag = document.createDocumentFragment();
    for (var r = start; r < end; r++) {
      var i = rows[r], row = document.createElement("tr");
      cols.forEach(function (c) {
        var td = document.createElement("td"), v = value(c.key, i);
        if (c.key === "stream" && details["stream-" + v]) {
          var a = document.createElement("a");
          a.href = "#stream-" + v; a.textContent = cellText(c, i); td.appendChild(a);
        } else {
          td.textContent = cellText(c, i);
        }
        if (numeric[c.kind]) { td.className = "n"; }
        if ((c.key === "retx_c2s" || c.key === "retx_s2c" || c.key === "zerowin") && v > 0) {
          td.className += " hot";
        }
        row.appendChild(td);
      });
      frag.appendChild(row);
    }
    tbody.textContent = "";
    tbody.appendChild(frag);
    var shown = end - start;
    count.textContent = rows.length
      ? "Connections " + nf.format(start + 1) + "–" + nf.format(end) + " of " + nf.format(rows.length)
        + (rows.length < n ? " (filtered from " + nf.format(n) + ")" : "")
      : n ? "No connection matches (" + nf.format(n) + " in all)" : "No TCP connection in this capture";
    count.setAttribute("data-rows", String(shown));
    count.setAttribute("data-total", String(rows.length));
    count.setAttribute("data-all", String(n));
    pageLabel.textContent = "page " + (page + 1) + " of " + pages;
  }

  var timer = null;
  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(applyFilter, 150); });
  sizeSel.addEventListener("change", function () { page = 0; render(); });
  document.getElementById("prev").addEventListener("click", function () { page--; render(); });
  document.getElementById("next").addEventListener("click", function () { page++; render(); });
  Array.prototype.forEach.call(document.querySelectorAll("a[data-filter]"), function (a) {
    a.addEventListener("click", function () { input.value = a.getAttribute("data-filter"); applyFilter(); });
  });
  // a link can open the table filtered and sorted: report.html#filter=retx%3E0&sort=-dur
  var asked = new URLSearchParams(location.hash.slice(1));
  if (asked.get("filter")) { input.value = asked.get("filter"); }
  var sortAsked = asked.get("sort") || "";
  if (byKey[sortAsked.replace(/^-/, "")]) {
    sortKey = sortAsked.replace(/^-/, ""); sortDesc = sortAsked.charAt(0) === "-";
  }
  applyFilter();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""

# a notebook output keeps inline styles; a <style> scoped by the wrapper's class
NOTEBOOK_STYLE = """<style>
.tcpsift .cards { display:flex; gap:10px; flex-wrap:wrap; margin:6px 0; }
.tcpsift .card { border:1px solid #dde2ea; border-radius:6px; padding:6px 12px; }
.tcpsift .card .v { font-size:18px; font-weight:600; }
.tcpsift .card .k { font-size:11px; color:#5b6577; text-transform:uppercase; }
.tcpsift td, .tcpsift th { text-align:left; white-space:nowrap; padding:2px 8px; }
.tcpsift { font-family:system-ui,sans-serif; }
.tcpsift td.n, .tcpsift th.n { text-align:right; }
.tcpsift .warning { color:#a40000; }
.tcpsift dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:0 14px; }
.tcpsift dl.facts dd { margin:0; }
.tcpsift .ladder-wrap { max-height:420px; overflow:auto; }
.tcpsift table.ladder td { font-family:monospace; padding:0 8px; text-align:right; }
.tcpsift tr.v-bad { background:#fde8e8; } .tcpsift tr.v-win { background:#efe6fb; }
.tcpsift tr.v-warn { background:#fff4d6; } .tcpsift tr.s2c td.arrow { color:#b35c00; }
.tcpsift tr.c2s td.arrow { color:#1f5fbf; }
</style>"""


def page(title: str, body: str) -> str:
    """The whole document: `title` is text (escaped here), `body` is HTML."""
    from html import escape

    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style>"
            f"<script>{ERROR_HOOK}</script></head>\n<body>{body}"
            f"<script>{SCRIPT}</script></body></html>\n")
