// Compliance: the report's checks (each finding linked to its key) and
// its charts, with axes, units and aliases beside key ids.
import { app } from "./app.js";
import { h, errorBox } from "./dom.js";
import { barChart, chartBox, fillDays } from "./charts.js";

function keyOf(resource) {
  const m = /key\/([0-9a-f-]{36}|mrk-[0-9a-f]{32})/.exec(resource || "");
  return m ? m[1] : "";
}

export async function renderCompliance(view) {
  view.append(h("h1", {}, "Compliance"));
  let rep;
  const names = {};
  try {
    rep = await app.client.get("/reports/compliance", { format: "json" });
  } catch (e) {
    view.append(errorBox(e));
    return;
  }
  try {
    let marker = "";
    for (let i = 0; i < 20; i++) {
      const page = await app.client.kms("ListAliases", marker ? { Marker: marker, Limit: 100 } : { Limit: 100 });
      for (const a of page.Aliases || []) if (a.TargetKeyId) names[a.TargetKeyId] = (names[a.TargetKeyId] ? names[a.TargetKeyId] + ", " : "") + a.AliasName;
      if (!page.Truncated) break;
      marker = page.NextMarker;
    }
  } catch (_) {
    /* ids only */
  }
  const label = (id) => (names[id] ? names[id] + " (" + id.slice(0, 8) + "…)" : id);
  view.append(h("p", { class: "hint" }, `${rep.scope} · region ${rep.region} · generated ${rep.generatedAt} · ${rep.events.toLocaleString("en")} events · ${rep.keys} keys`));
  const body = h("tbody");
  for (const c of rep.checks) {
    const findings = (c.findings || []).map((f) => {
      const id = keyOf(f.resource);
      return h("li", {}, id ? h("a", { href: "#/key/" + id, class: "finding-key" }, label(id)) : h("code", {}, f.resource), ": " + f.detail);
    });
    body.append(h("tr", {}, h("td", { class: "status-" + c.status }, c.status), h("td", {}, c.title, h("div", { class: "hint" }, c.source)),
      h("td", {}, findings.length ? h("ul", {}, findings) : c.summary || "")));
  }
  view.append(h("table", { id: "checks" }, h("caption", { class: "sr" }, "Checks"), h("thead", {}, h("tr", {}, ["Status", "Check", "Findings"].map((c) => h("th", { scope: "col" }, c)))), body));

  const charts = h("div", { class: "grid2" });
  const usageDays = {};
  for (const s of rep.usage || []) for (const [d, n] of Object.entries(s.counts)) usageDays[d] = (usageDays[d] || 0) + n;
  const u = fillDays(usageDays);
  charts.append(h("div", { class: "card" }, chartBox(barChart({ title: "Usage of the busiest keys", points: u.points, yUnit: "operations per " + u.unit, xTitle: u.unit + " (UTC)" }),
    "Busiest keys: " + (rep.usage || []).map((s) => label(s.key) + " " + Object.values(s.counts).reduce((a, b) => a + b, 0).toLocaleString("en")).join("; "))));
  const states = Object.entries(rep.keysByState || {}).sort().map(([label, value]) => ({ label, value }));
  charts.append(h("div", { class: "card" }, chartBox(barChart({ title: "Keys by state", points: states, yUnit: "keys", xTitle: "state" }))));
  const ages = Object.entries(rep.rotationAgeDays || {}).sort((a, b) => b[1] - a[1]).slice(0, 30).map(([k, v]) => ({ label: (names[k] || k.slice(0, 8) + "…").slice(0, 18), value: Math.max(0, v) }));
  charts.append(h("div", { class: "card" }, chartBox(barChart({ title: "Rotation age (oldest 30 keys)", points: ages, yUnit: "days since current material", xTitle: "key", cls: "bar2" }))));
  const d = fillDays(rep.deniedPerDay || {});
  charts.append(h("div", { class: "card" }, chartBox(barChart({ title: "Access denied", points: d.points, yUnit: "refusals per " + d.unit, xTitle: d.unit + " (UTC)", cls: "bar2" }))));
  view.append(h("h2", {}, "Charts"), charts);
}
