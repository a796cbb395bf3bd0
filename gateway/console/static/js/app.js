// keyledger console: a client of the KMS and audit APIs, signing with
// SigV4 in the page. Views are drawn from hash routes (#/keys, #/key/<id>,
// #/audit, #/integrity, #/compliance); nothing secret ever goes in a URL.
import { Client } from "./api.js";
import { h, clear, errorBox, field, fmtTime, toast } from "./dom.js";
import { renderKeys, renderKey } from "./keys.js";
import { renderAudit } from "./audit.js";
import { renderIntegrity } from "./integrity.js";
import { renderCompliance } from "./compliance.js";

const SESSION = "keyledger.session"; // sessionStorage: dies with the tab
const VKEY = "keyledger.vkey"; // localStorage: a public key, not a secret

export const app = {
  client: null,
  region: "",
  vkey: "",
  stop: null, // ends the current view's streams
};

async function config() {
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    return await res.json();
  } catch (_) {
    return {};
  }
}

function signedIn(akid, secret, region) {
  app.client = new Client(akid, secret, region);
  app.region = region;
  document.getElementById("who").textContent = akid + " · " + region;
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("signin").hidden = true;
}

function signOut() {
  sessionStorage.removeItem(SESSION);
  app.client = null;
  location.hash = "#/";
  location.reload();
}

async function boot() {
  if (!window.isSecureContext || !crypto.subtle) {
    // WebCrypto (signing, proofs) exists only in secure contexts.
    document.getElementById("view").append(errorBox(new Error(
      "The console signs requests with WebCrypto, which browsers offer only over https (or http on localhost). Open it through TLS.")));
    return;
  }
  const cfg = await config();
  app.vkey = localStorage.getItem(VKEY) || "";
  const saved = sessionStorage.getItem(SESSION);
  if (saved) {
    try {
      const s = JSON.parse(saved);
      signedIn(s.akid, s.secret, s.region);
    } catch (_) {
      sessionStorage.removeItem(SESSION);
    }
  }
  document.getElementById("signout").addEventListener("click", signOut);
  const form = document.getElementById("signin-form");
  form.elements.region.value = cfg.region || "us-east-1";
  form.elements.vkey.value = app.vkey;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const akid = form.elements.akid.value.trim();
    const secret = form.elements.secret.value;
    const region = form.elements.region.value.trim();
    const vkey = form.elements.vkey.value.trim();
    form.elements.secret.value = ""; // out of the DOM at once
    sessionStorage.setItem(SESSION, JSON.stringify({ akid, secret, region }));
    if (vkey) localStorage.setItem(VKEY, vkey);
    else localStorage.removeItem(VKEY);
    app.vkey = vkey;
    signedIn(akid, secret, region);
    if (!location.hash || location.hash === "#/") location.hash = "#/keys";
    else route();
  });
  window.addEventListener("hashchange", route);
  route();
}

export function setVerifierKey(vkey) {
  app.vkey = vkey.trim();
  if (app.vkey) localStorage.setItem(VKEY, app.vkey);
  else localStorage.removeItem(VKEY);
}

function route() {
  if (app.stop) {
    app.stop();
    app.stop = null;
  }
  const view = clear(document.getElementById("view"));
  if (!app.client) {
    document.getElementById("signin").hidden = false;
    document.getElementById("si-akid").focus();
    return;
  }
  const parts = (location.hash || "#/keys").slice(2).split("/").map(decodeURIComponent);
  const section = parts[0] || "keys";
  for (const a of document.querySelectorAll("#nav a")) {
    const cur = a.dataset.section === section || (section === "key" && a.dataset.section === "keys");
    if (cur) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  let p;
  switch (section) {
    case "key":
      p = renderKey(view, parts[1], parts[2] || "overview", parts[3]);
      break;
    case "audit":
      p = renderAudit(view);
      break;
    case "integrity":
      p = renderIntegrity(view, parts[1]);
      break;
    case "compliance":
      p = renderCompliance(view);
      break;
    default:
      p = renderKeys(view);
  }
  Promise.resolve(p).catch((e) => view.append(errorBox(e)));
  const heading = view.querySelector("h1");
  if (heading) heading.setAttribute("tabindex", "-1");
}

// Helpers the views share.
export { h, clear, errorBox, field, fmtTime, toast };

boot();
