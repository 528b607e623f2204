// Two hand-drawn SVG charts (a line over versions, horizontal bars): no library needed.
// Every chart is an <svg role="img"> with a <title>; the page also shows its numbers in a
// table, so the chart is never the only way to read them.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (a !== 0 && (a < 0.001 || a >= 100000)) return v.toExponential(2);
    return (Math.round(v * 1000) / 1000).toString();
  }

  function svg(width, height, label) {
    var root = el("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": label });
    root.appendChild(el("title", {}, label));
    return root;
  }

  // points: [{label: "v1", value: 0.93}], drawn left to right in the given order.
  function line(points, title) {
    var W = 640, H = 240, L = 56, R = 16, T = 16, B = 36;
    var root = svg(W, H, title);
    var values = points.map(function (p) { return p.value; }).filter(isFinite);
    if (!values.length) return root;
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (lo === hi) { lo -= Math.abs(lo) * 0.05 || 1; hi += Math.abs(hi) * 0.05 || 1; }
    var pad = (hi - lo) * 0.1; lo -= pad; hi += pad;
    var x = function (i) { return L + (points.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (points.length - 1)); };
    var y = function (v) { return T + (hi - v) * (H - T - B) / (hi - lo); };
    for (var g = 0; g <= 4; g++) {
      var gv = lo + (hi - lo) * g / 4;
      root.appendChild(el("line", { x1: L, x2: W - R, y1: y(gv), y2: y(gv), "class": "grid-line" }));
      root.appendChild(el("text", { x: L - 6, y: y(gv) + 4, "text-anchor": "end" }, fmt(gv)));
    }
    root.appendChild(el("line", { x1: L, x2: L, y1: T, y2: H - B, "class": "axis" }));
    root.appendChild(el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "axis" }));
    var d = "";
    points.forEach(function (p, i) {
      if (!isFinite(p.value)) return;
      d += (d ? " L " : "M ") + x(i) + " " + y(p.value);
    });
    root.appendChild(el("path", { d: d, "class": "series" }));
    points.forEach(function (p, i) {
      root.appendChild(el("text", { x: x(i), y: H - B + 16, "text-anchor": "middle" }, p.label));
      if (!isFinite(p.value)) return;
      var dot = el("circle", { cx: x(i), cy: y(p.value), r: 4, "class": "point" });
      dot.appendChild(el("title", {}, p.label + ": " + fmt(p.value)));
      root.appendChild(dot);
    });
    return root;
  }

  // items: [{label: "co2", value: 0.31, flag: true}], longest bar = largest value.
  function bars(items, title) {
    var row = 22, L = 150, R = 60, W = 640, H = 12 + row * items.length;
    var root = svg(W, H, title);
    var max = Math.max.apply(null, items.map(function (i) { return isFinite(i.value) ? i.value : 0; }).concat([1e-9]));
    items.forEach(function (item, k) {
      var top = 6 + k * row, width = isFinite(item.value) ? (W - L - R) * Math.max(item.value, 0) / max : 0;
      var name = item.label.length > 22 ? item.label.slice(0, 21) + "…" : item.label;
      root.appendChild(el("text", { x: L - 6, y: top + 14, "text-anchor": "end" }, name));
      var bar = el("rect", { x: L, y: top + 3, width: Math.max(width, 1), height: row - 8, "class": item.flag ? "bar flag" : "bar" });
      bar.appendChild(el("title", {}, item.label + ": " + fmt(item.value)));
      root.appendChild(bar);
      root.appendChild(el("text", { x: L + width + 4, y: top + 14 }, fmt(item.value) + (item.flag ? " ⚠" : "")));
    });
    return root;
  }

  window.Charts = { line: line, bars: bars, fmt: fmt };
})();
