// Small DOM helpers. Text always goes in as text nodes (never HTML), so
// nothing the server or another user wrote (descriptions, tags, policies,
// event fields) can run as script.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function fmtTime(t) {
  if (!t) return "";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  if (isNaN(d)) return String(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/:\d\dZ$/, (m) => m);
}

export function errorBox(e) {
  const text = e && e.code ? e.code + ": " + e.message : String(e && e.message ? e.message : e);
  return h("div", { class: "error", role: "alert" }, text);
}

let uid = 0;
export function nextId(prefix) {
  uid++;
  return (prefix || "f") + uid;
}

// field is a labelled control.
export function field(label, control, hint) {
  if (!control.id) control.id = nextId("c");
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hint ? h("span", { class: "hint" }, hint) : null);
}

export function toast(msg) {
  const box = document.getElementById("toast");
  const m = h("div", { class: "msg" }, msg);
  box.append(m);
  setTimeout(() => m.remove(), 4000);
}
