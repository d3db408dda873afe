// lossdx report plots: a small SVG renderer (no library, nothing fetched). Every string from the input is
// set with textContent / setAttribute, never parsed as HTML.
(function () {
  "use strict";
  var t0 = performance.now();
  var root = document.documentElement;
  window.addEventListener("error", function (e) {
    root.setAttribute("data-js-errors", (root.getAttribute("data-js-errors") || "") + (e.message || "error") + ";");
  });
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("lossdx-data").textContent);
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  var SEV = {error: "#d62728", warning: "#ff7f0e", info: "#7f7f7f"};
  var PHASE = ["#e8f1fb", "#eef7ea", "#f6f0fa", "#fbf3e6"];
  var full = [data.x_min, data.x_max];
  var view = full.slice();
  var panels = [];
  var detail = document.getElementById("detail");

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) {
    if (!isFinite(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(Math.round(v * 1e4) / 1e4);
  }
  function ticks(lo, hi, n) {
    var span = hi - lo;
    if (!(span > 0)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log10(span / n)));
    var err = span / n / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }
  function show(msg) {
    detail.textContent = msg;
    detail.style.display = "block";
  }

  function draw(p) {
    var svg = p.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var W = p.box.clientWidth || 900, H = p.height, L = 64, R = 12, T = 18, B = 26;
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    var pw = W - L - R, ph = H - T - B;
    p.area = {L: L, T: T, pw: pw, ph: ph};
    var lo = Infinity, hi = -Infinity;
    p.spec.series.forEach(function (s) {
      for (var i = 0; i < s.x.length; i++) {
        var x = s.x[i], y = s.y[i];
        if (y === null || x < view[0] || x > view[1]) continue;
        if (p.log && !(y > 0)) continue;
        if (y < lo) lo = y; if (y > hi) hi = y;
      }
    });
    if (!(lo <= hi)) { lo = p.log ? 0.1 : 0; hi = p.log ? 10 : 1; }
    var f = p.log ? Math.log10 : function (v) { return v; };
    var ylo = f(lo), yhi = f(hi);
    if (yhi - ylo < 1e-12) { ylo -= 0.5; yhi += 0.5; }
    var pad = (yhi - ylo) * 0.04; ylo -= pad; yhi += pad;
    var xs = function (x) { return L + (x - view[0]) / ((view[1] - view[0]) || 1) * pw; };
    var ys = function (y) { return T + (1 - (f(y) - ylo) / (yhi - ylo)) * ph; };
    p.xinv = function (px) { return view[0] + (px - L) / pw * ((view[1] - view[0]) || 1); };
    var clipId = "clip-" + p.index;
    var defs = el("defs", {}, svg);
    el("rect", {x: L, y: T, width: pw, height: ph}, el("clipPath", {id: clipId}, defs));
    el("rect", {x: L, y: T, width: pw, height: ph, fill: "#fff", stroke: "#ccc", "class": "plot-area"}, svg);
    var g = el("g", {"clip-path": "url(#" + clipId + ")"}, svg);
    (p.spec.phases || []).forEach(function (ph_, i) {
      var x0 = xs(ph_.start), x1 = xs(ph_.end);
      var r = el("rect", {x: x0, y: T, width: Math.max(1, x1 - x0), height: ph, fill: PHASE[i % PHASE.length]}, g);
      el("title", {}, r).textContent = ph_.name + " (steps " + ph_.start + "-" + ph_.end + ")";
      var lab = el("text", {x: x0 + 4, y: T + ph - 4, "font-size": 10, fill: "#888"}, g);
      lab.textContent = ph_.name;
    });
    // y grid and labels
    var yt = p.log ? (function () {
      var out = []; for (var e = Math.ceil(ylo); e <= Math.floor(yhi); e++) out.push(Math.pow(10, e));
      if (out.length < 3) out = ticks(Math.pow(10, ylo), Math.pow(10, yhi), 4);
      return out;
    })() : ticks(ylo, yhi, 5);
    yt.forEach(function (v) {
      var y = ys(v);
      if (y < T - 0.5 || y > T + ph + 0.5) return;
      el("line", {x1: L, x2: L + pw, y1: y, y2: y, stroke: "#eee"}, svg);
      var tx = el("text", {x: L - 4, y: y + 3, "text-anchor": "end", "font-size": 10, fill: "#555"}, svg);
      tx.textContent = fmt(v);
    });
    var xfmt = function (v) {  // steps and tokens: 250k, 1.2M, 3B
      var a = Math.abs(v), units = [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
      for (var i = 0; i < units.length; i++) {
        if (a >= units[i][0] && a >= 1e4) return String(Math.round(v / units[i][0] * 100) / 100) + units[i][1];
      }
      return fmt(v);
    };
    ticks(view[0], view[1], 8).forEach(function (v) {
      var x = xs(v);
      el("line", {x1: x, x2: x, y1: T + ph, y2: T + ph + 4, stroke: "#999"}, svg);
      var tx = el("text", {x: x, y: T + ph + 15, "text-anchor": "middle", "font-size": 10, fill: "#555"}, svg);
      tx.textContent = xfmt(v);
    });
    // curves
    p.spec.series.forEach(function (s) {
      var d = [], pen = false;
      for (var i = 0; i < s.x.length; i++) {
        var y = s.y[i];
        if (y === null || (p.log && !(y > 0))) { pen = false; continue; }
        d.push((pen ? "L" : "M") + xs(s.x[i]).toFixed(1) + " " + ys(y).toFixed(1));
        pen = true;
      }
      el("path", {d: d.join(""), fill: "none", stroke: s.color, "stroke-width": 1.3,
                  "stroke-dasharray": s.dash ? "5 3" : "none", "class": "curve"}, g);
      (s.nonfinite || []).forEach(function (r) {
        var x0 = xs(r[0]), x1 = xs(r[1]);
        var m = el("rect", {x: x0 - 1, y: T, width: Math.max(2, x1 - x0 + 2), height: 6, fill: "#d62728",
                            "class": "marker"}, g);
        el("title", {}, m).textContent = s.name + " non-finite (" + r[2] + ") at steps " + r[0] + "-" + r[1];
        m.addEventListener("click", function () { show(s.name + ": non-finite (" + r[2] + ") at steps " + r[0] + "-" + r[1]); });
      });
    });
    // findings at their steps
    (p.spec.findings || []).forEach(function (fd) {
      if (fd.kind === "log_limit") return;  // what the log cannot show: listed in the table, not a place
      var x0 = xs(fd.start), x1 = xs(fd.end);
      var wide = (x1 - x0) > pw * 0.2;
      var c = SEV[fd.severity] || "#555";
      var band = el("rect", {x: x0 - 1.5, y: T, width: Math.max(3, x1 - x0 + 3), height: ph, fill: c,
                             "fill-opacity": wide ? 0.06 : 0.18, stroke: c, "stroke-opacity": wide ? 0.3 : 0.7,
                             "class": "finding"}, g);
      var tip = fd.kind + " @" + fd.start + (fd.end !== fd.start ? "-" + fd.end : "") + ": " + fd.message;
      el("title", {}, band).textContent = tip;
      var dot = el("circle", {cx: (x0 + x1) / 2, cy: T + 8, r: 5, fill: c, "class": "finding-dot"}, g);
      el("title", {}, dot).textContent = tip;
      band.addEventListener("click", function () { show(tip); });
      dot.addEventListener("click", function () { show(tip); });
    });
    // legend
    var lx = L + 8;
    p.spec.series.forEach(function (s) {
      el("line", {x1: lx, x2: lx + 14, y1: T - 8, y2: T - 8, stroke: s.color, "stroke-width": 2,
                  "stroke-dasharray": s.dash ? "4 2" : "none"}, svg);
      var tx = el("text", {x: lx + 18, y: T - 4, "font-size": 11, fill: "#333"}, svg);
      tx.textContent = s.name;
      lx += 26 + 6.5 * s.name.length;
    });
    p.sel = el("rect", {x: 0, y: T, width: 0, height: ph, fill: "#1f77b4", "fill-opacity": 0.15,
                        visibility: "hidden"}, svg);
    p.cross = el("line", {x1: 0, x2: 0, y1: T, y2: T + ph, stroke: "#999", visibility: "hidden"}, svg);
  }

  function redraw() { panels.forEach(draw); }

  function readout(p, step) {
    var parts = [];
    p.spec.series.forEach(function (s) {
      var lo = 0, hi = s.x.length - 1;
      if (hi < 0) return;
      while (lo < hi) { var mid = (lo + hi) >> 1; if (s.x[mid] < step) lo = mid + 1; else hi = mid; }
      if (lo > 0 && Math.abs(s.x[lo - 1] - step) < Math.abs(s.x[lo] - step)) lo--;
      parts.push(s.name + " " + (s.y[lo] === null ? "non-finite" : fmt(s.y[lo])) + " @" + s.x[lo]);
    });
    p.readout.textContent = parts.join("   ");
  }

  function attach(p) {
    var drag = null;
    p.svg.addEventListener("mousedown", function (e) {
      var r = p.svg.getBoundingClientRect();
      drag = e.clientX - r.left;
    });
    p.svg.addEventListener("mousemove", function (e) {
      var r = p.svg.getBoundingClientRect(), x = e.clientX - r.left;
      if (x < p.area.L || x > p.area.L + p.area.pw) return;
      panels.forEach(function (q) {
        q.cross.setAttribute("x1", x); q.cross.setAttribute("x2", x); q.cross.setAttribute("visibility", "visible");
        readout(q, p.xinv(x));
      });
      if (drag !== null) {
        p.sel.setAttribute("x", Math.min(drag, x)); p.sel.setAttribute("width", Math.abs(x - drag));
        p.sel.setAttribute("visibility", "visible");
      }
    });
    p.svg.addEventListener("mouseup", function (e) {
      if (drag === null) return;
      var r = p.svg.getBoundingClientRect(), x = e.clientX - r.left;
      if (Math.abs(x - drag) > 5) {
        var a = p.xinv(Math.min(drag, x)), b = p.xinv(Math.max(drag, x));
        view = [Math.max(full[0], a), Math.min(full[1], b)];
        redraw();
      }
      drag = null;
    });
    p.svg.addEventListener("dblclick", function () { view = full.slice(); redraw(); });
  }

  data.panels.forEach(function (spec, i) {
    var box = document.createElement("div");
    box.className = "panel";
    var head = document.createElement("div");
    head.className = "panel-head";
    var title = document.createElement("b");
    title.textContent = spec.title;
    head.appendChild(title);
    var btn = document.createElement("button");
    btn.textContent = "log y";
    head.appendChild(btn);
    var ro = document.createElement("span");
    ro.className = "readout";
    head.appendChild(ro);
    box.appendChild(head);
    var svg = document.createElementNS(NS, "svg");
    box.appendChild(svg);
    document.getElementById("plots").appendChild(box);
    spec.series.forEach(function (s, j) { s.color = s.color || COLORS[j % COLORS.length]; });
    var p = {spec: spec, svg: svg, box: box, height: spec.height || 160, log: !!spec.log, index: i, readout: ro};
    btn.addEventListener("click", function () { p.log = !p.log; btn.classList.toggle("on", p.log); draw(p); });
    if (p.log) btn.classList.add("on");
    panels.push(p);
    attach(p);
  });
  document.getElementById("reset").addEventListener("click", function () { view = full.slice(); redraw(); });
  Array.prototype.forEach.call(document.querySelectorAll("[data-zoom]"), function (row) {
    row.addEventListener("click", function () {
      var r = row.getAttribute("data-zoom").split(",").map(Number);
      var span = Math.max(r[1] - r[0], (full[1] - full[0]) / 50);
      view = [Math.max(full[0], r[0] - span), Math.min(full[1], r[1] + span)];
      redraw();
      window.scrollTo(0, 0);
    });
  });
  redraw();
  window.addEventListener("resize", redraw);
  var area = panels.length ? panels[0].svg.getBoundingClientRect() : {left: 0, top: 0};
  if (panels.length) {
    var a = panels[0].area;
    root.setAttribute("data-plot-rect", [Math.round(area.left + window.scrollX + a.L), Math.round(area.top + window.scrollY + a.T),
                                         Math.round(a.pw), Math.round(a.ph)].join(","));
  }
  root.setAttribute("data-render-ms", (performance.now() - t0).toFixed(1));
})();
