// QuantumFlow dashboard charts: line charts of the last hour drawn as
// inline SVG (no library, nothing fetched: the page works offline under a
// strict Content-Security-Policy). Values come from GET api/history.
"use strict";

window.QFChart = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 170, LEFT = 44, RIGHT = 8, TOP = 8, BOTTOM = 20;
  const WINDOW_MS = 3600 * 1000;

  function node(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return Number.isInteger(v) ? String(v) : v.toFixed(2);
  }

  // draw replaces svg's content with one line per series over the hour
  // ending at now. series: [{key, cls}], the key a field of each point;
  // a point without the field breaks the line.
  function draw(svg, points, series, now) {
    const end = now || Date.now();
    const start = end - WINDOW_MS;
    let top = 0;
    for (const p of points) for (const s of series) if (typeof p[s.key] === "number") top = Math.max(top, p[s.key]);
    top = top > 0 ? top * 1.1 : 1;
    const x = (t) => LEFT + (W - LEFT - RIGHT) * Math.min(1, Math.max(0, (t - start) / WINDOW_MS));
    const y = (v) => TOP + (H - TOP - BOTTOM) * (1 - v / top);
    const out = [
      node("line", { x1: LEFT, y1: y(0), x2: W - RIGHT, y2: y(0), class: "axis" }),
      node("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: y(0), class: "axis" }),
      node("line", { x1: LEFT, y1: y(top / 2), x2: W - RIGHT, y2: y(top / 2), class: "grid" }),
      node("text", { x: LEFT - 4, y: TOP + 8, class: "tick", "text-anchor": "end" }, fmt(top)),
      node("text", { x: LEFT - 4, y: y(top / 2) + 4, class: "tick", "text-anchor": "end" }, fmt(top / 2)),
      node("text", { x: LEFT - 4, y: y(0), class: "tick", "text-anchor": "end" }, "0"),
      node("text", { x: LEFT, y: H - 4, class: "tick" }, "−60 min"),
      node("text", { x: (LEFT + W - RIGHT) / 2, y: H - 4, class: "tick", "text-anchor": "middle" }, "−30 min"),
      node("text", { x: W - RIGHT, y: H - 4, class: "tick", "text-anchor": "end" }, "now"),
    ];
    for (const s of series) {
      let run = [];
      const flush = () => {
        if (run.length === 1) out.push(node("circle", { cx: run[0][0], cy: run[0][1], r: 2, class: "line " + s.cls }));
        if (run.length > 1) out.push(node("polyline", { points: run.map((p) => p.join(",")).join(" "), class: "line " + s.cls, "data-series": s.key }));
        run = [];
      };
      for (const p of points) {
        const v = p[s.key];
        const t = Date.parse(p.at);
        if (typeof v !== "number" || isNaN(t) || t < start) { flush(); continue; }
        run.push([x(t).toFixed(1), y(v).toFixed(1)]);
      }
      flush();
    }
    svg.replaceChildren(...out);
    svg.setAttribute("data-points", String(points.length));
  }

  return { draw };
})();
