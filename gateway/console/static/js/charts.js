// SVG charts with axes, units and labels, drawn from data (no library).
import { s, h } from "./dom.js";

// niceTicks returns about n round tick values from 0 to at least max.
export function niceTicks(max, n = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = Math.max(1, [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw)); // counts: whole steps
  const ticks = [];
  for (let v = 0; v < max + step; v += step) ticks.push(Math.round(v * 1000) / 1000);
  return ticks;
}

export function fmtNum(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + "M";
  if (v >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return String(v);
}

// fillDays turns a {YYYY-MM-DD: n} map into consecutive days (zeros
// filled in), grouped into weeks or months when the range is long, so a
// day and a year both read.
export function fillDays(days) {
  const keys = Object.keys(days || {}).sort();
  if (!keys.length) return { unit: "day", points: [] };
  const first = new Date(keys[0] + "T00:00:00Z");
  const last = new Date(keys[keys.length - 1] + "T00:00:00Z");
  const span = Math.round((last - first) / 864e5) + 1;
  const unit = span > 400 ? "month" : span > 92 ? "week" : "day";
  const buckets = new Map();
  for (let d = new Date(first); d <= last; d = new Date(d.getTime() + 864e5)) {
    const k = bucketOf(d, unit);
    if (!buckets.has(k)) buckets.set(k, 0);
  }
  for (const [k, v] of Object.entries(days)) {
    const b = bucketOf(new Date(k + "T00:00:00Z"), unit);
    buckets.set(b, (buckets.get(b) || 0) + v);
  }
  return { unit, points: [...buckets].map(([label, value]) => ({ label, value })) };
}

function bucketOf(d, unit) {
  const iso = d.toISOString().slice(0, 10);
  if (unit === "day") return iso;
  if (unit === "month") return iso.slice(0, 7);
  const monday = new Date(d.getTime() - ((d.getUTCDay() + 6) % 7) * 864e5);
  return "week of " + monday.toISOString().slice(0, 10);
}

// barChart draws labelled bars: points [{label, value}], yUnit names what
// is counted ("operations per day"), xTitle the axis.
export function barChart({ title, points, yUnit, xTitle, cls = "bar", width = 560, height = 260, onClick }) {
  const m = { l: 62, r: 12, t: 26, b: 70 };
  const w = width - m.l - m.r;
  const hgt = height - m.t - m.b;
  const max = Math.max(0, ...points.map((p) => p.value));
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1] || 1;
  const total = points.reduce((a, p) => a + p.value, 0);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${fmtNum(total)} ${yUnit} in total over ${points.length} ${xTitle || "bars"}` });
  svg.append(s("title", {}, title));
  svg.append(s("text", { x: m.l, y: 14, "font-weight": "600" }, `${title} — ${total.toLocaleString("en")} in total`));
  for (const t of ticks) {
    const y = m.t + hgt - (t / top) * hgt;
    svg.append(s("line", { class: "gridline", x1: m.l, x2: m.l + w, y1: y, y2: y }));
    svg.append(s("text", { x: m.l - 6, y: y + 4, "text-anchor": "end" }, fmtNum(t)));
  }
  svg.append(s("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: m.t + hgt }));
  svg.append(s("line", { class: "axis", x1: m.l, x2: m.l + w, y1: m.t + hgt, y2: m.t + hgt }));
  svg.append(s("text", { x: 12, y: m.t + hgt / 2, transform: `rotate(-90 12 ${m.t + hgt / 2})`, "text-anchor": "middle" }, yUnit));
  if (xTitle) svg.append(s("text", { x: m.l + w / 2, y: height - 4, "text-anchor": "middle" }, xTitle));
  if (!points.length) {
    svg.append(s("text", { x: m.l + w / 2, y: m.t + hgt / 2, "text-anchor": "middle" }, "no data"));
    return svg;
  }
  const slot = w / points.length;
  const bw = Math.max(1, Math.min(60, slot * 0.8));
  const every = Math.ceil(points.length / Math.max(1, Math.floor(w / 70)));
  points.forEach((p, i) => {
    const x = m.l + i * slot + (slot - bw) / 2;
    const bh = (p.value / top) * hgt;
    const bar = s("rect", { class: cls, x, y: m.t + hgt - bh, width: bw, height: Math.max(p.value > 0 ? 1 : 0, bh) }, s("title", {}, `${p.label}: ${p.value.toLocaleString("en")} ${yUnit}`));
    if (onClick) bar.addEventListener("click", () => onClick(p));
    svg.append(bar);
    if (points.length <= 12 && p.value > 0) svg.append(s("text", { x: x + bw / 2, y: m.t + hgt - bh - 3, "text-anchor": "middle" }, fmtNum(p.value)));
    if (i % every === 0) {
      const lx = m.l + i * slot + slot / 2;
      svg.append(s("text", { x: lx, y: m.t + hgt + 14, "text-anchor": "end", transform: `rotate(-30 ${lx} ${m.t + hgt + 14})` }, p.label));
    }
  });
  return svg;
}

// chartBox wraps a chart with a caption for screen readers and a table
// fallback of its numbers.
export function chartBox(svg, caption) {
  return h("figure", { class: "chart" }, svg, caption ? h("figcaption", { class: "hint" }, caption) : null);
}
