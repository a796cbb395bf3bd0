// Event lists (virtualized: only the rows in view are in the DOM), the
// event detail (CloudTrail view) and the in-page proof check.
import { h, clear, errorBox, fmtTime } from "./dom.js";
import { b64decode, verifyInclusion } from "./verify.js";

export const ROW = 28; // px, as .evrow's height

// parse reads one SSE event's data (the event's exact bytes, JSON).
export function parseEvent(ev) {
  let e = {};
  try {
    e = JSON.parse(ev.data);
  } catch (_) {
    /* keep the raw text */
  }
  const actor = e.actor || {};
  return {
    index: Number(ev.id),
    op: e.op || ev.event,
    time: e.time || "",
    keyId: e.keyId || "",
    who: actor.principalArn || (e.actor ? actor.accessKeyId : "keyledger (service)"),
    error: e.error && e.error.code ? e.error : null,
    raw: ev.data,
  };
}

function who(arn) {
  const i = arn.lastIndexOf(":");
  return i >= 0 ? arn.slice(i + 1) : arn;
}

// EventList shows many events newest first in a fixed-height scroller,
// drawing only the rows in view (a million events stay scrollable).
export class EventList {
  constructor({ label, onOpen, showKey = true }) {
    this.items = [];
    this.filter = null;
    this.shown = [];
    this.onOpen = onOpen;
    this.showKey = showKey;
    this.rows = h("div", { class: "rows", role: "presentation" });
    this.spacer = h("div", { class: "spacer" }, this.rows);
    this.el = h("div", { class: "scroller", tabindex: "0", role: "list", "aria-label": label }, this.spacer);
    this.el.addEventListener("scroll", () => this.draw());
    this.pending = false;
  }

  header() {
    return h("div", { class: "evrow evhead", "aria-hidden": "true" },
      h("span", {}, "#"), h("span", { class: "c-time" }, "time (UTC)"), h("span", {}, "event"),
      h("span", { class: "c-who" }, this.showKey ? "who · key" : "who"), h("span", {}, "result"));
  }

  add(item) {
    this.items.push(item);
    if (!this.filter || this.filter(item)) this.shown.push(item);
    this.schedule();
  }

  // prepend adds older events (ascending) before those already listed.
  prepend(items) {
    this.items = items.concat(this.items);
    this.shown = this.filter ? this.items.filter(this.filter) : this.items.slice();
    this.schedule();
  }

  setFilter(f) {
    this.filter = f;
    this.shown = f ? this.items.filter(f) : this.items.slice();
    this.draw();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const n = this.shown.length;
    this.spacer.style.height = n * ROW + "px";
    const first = Math.max(0, Math.floor(this.el.scrollTop / ROW) - 5);
    const count = Math.ceil((this.el.clientHeight || 600) / ROW) + 10;
    clear(this.rows);
    this.rows.style.top = first * ROW + "px";
    for (let i = first; i < Math.min(n, first + count); i++) {
      const it = this.shown[n - 1 - i]; // newest first
      const refused = !!it.error;
      const row = h("div", {
        class: "evrow" + (refused ? " refused" : ""), role: "listitem", tabindex: "0",
        "aria-label": `event ${it.index} ${it.op} by ${who(it.who)} ${refused ? "refused: " + it.error.code : "allowed"}`,
        "data-index": it.index,
        onclick: () => this.onOpen(it),
        onkeydown: (ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            this.onOpen(it);
          }
        },
      },
      h("span", { class: "mono" }, it.index),
      h("span", { class: "c-time mono" }, fmtTime(it.time)),
      h("span", {}, it.op),
      h("span", { class: "c-who", title: it.who }, who(it.who) + (this.showKey && it.keyId ? " · " + it.keyId.slice(0, 8) : "")),
      h("span", { class: refused ? "bad" : "ok", title: refused ? it.error.code : "allowed" }, refused ? it.error.code.replace(/Exception$/, "") : "allowed"));
      this.rows.append(row);
    }
  }
}

// eventDetail fills box with one event: who, what, when, allowed or
// refused and why, its CloudTrail record, and a button that checks its
// inclusion proof in this page.
export async function eventDetail(app, box, item, extra) {
  clear(box);
  box.append(h("h2", {}, `Event ${item.index}: ${item.op}`));
  const refused = item.error;
  box.append(h("dl", { class: "props" },
    h("dt", {}, "When"), h("dd", {}, fmtTime(item.time)),
    h("dt", {}, "Who"), h("dd", { class: "mono" }, item.who),
    h("dt", {}, "Key"), h("dd", { class: "mono" }, item.keyId ? h("a", { href: "#/key/" + item.keyId }, item.keyId) : "—"),
    h("dt", {}, "Outcome"), h("dd", { class: refused ? "bad" : "ok" }, refused ? `refused: ${refused.code}: ${refused.message || ""}${refused.reason ? " (" + refused.reason + ")" : ""}` : "allowed")));
  const actions = h("div", { class: "actions" });
  const proofBox = h("div", { class: "proof", "aria-live": "polite" });
  actions.append(h("button", { type: "button", class: "verify-proof", onclick: () => checkProof(app, proofBox, item.index) }, "Verify inclusion proof"));
  if (extra) actions.append(...extra);
  box.append(actions, proofBox);
  const ct = h("pre", { class: "cloudtrail", "aria-label": "CloudTrail record" }, "loading the CloudTrail record…");
  box.append(h("h3", {}, "CloudTrail view"), ct);
  try {
    const one = await app.client.get("/audit/events/" + item.index);
    ct.textContent = JSON.stringify(one.cloudTrail, null, 2);
  } catch (e) {
    ct.replaceWith(errorBox(e));
  }
}

// checkProof fetches the event's bytes, a fresh signed checkpoint and the
// inclusion proof for it, and verifies them here: RFC 6962 hashing and the
// note's Ed25519 signature against the verifier key the user gave.
export async function checkProof(app, box, index) {
  clear(box);
  box.append(h("p", {}, "Checking…"));
  try {
    if (!app.vkey) throw new Error("No checkpoint verifier key: give one (Integrity page, or at sign-in) to check proofs.");
    const one = await app.client.get("/audit/events/" + index);
    const checkpoint = await app.client.text("/audit/checkpoint");
    const size = Number(checkpoint.split("\n")[1]);
    const proof = await app.client.get("/audit/proof/inclusion", { index, size });
    const res = await verifyInclusion({ index, eventBytes: b64decode(one.raw), proof: proof.proof, checkpoint, vkey: app.vkey });
    clear(box);
    box.append(h("p", { class: "verdict " + (res.ok ? "ok" : "bad"), role: "status" },
      res.ok ? `✓ Event ${index} is in the ledger the signed checkpoint covers.` : `✗ Proof FAILED for event ${index}.`));
    box.append(h("ul", { class: "steps" }, res.steps.map((st) => h("li", {}, h("span", { class: st.ok ? "ok" : "bad" }, st.ok ? "✓ " : "✗ "), h("strong", {}, st.what + ": "), h("span", { class: "mono" }, st.detail)))));
    box.append(h("details", {}, h("summary", {}, "Signed checkpoint"), h("pre", {}, checkpoint)));
  } catch (e) {
    clear(box);
    box.append(h("p", { class: "verdict bad", role: "status" }, `✗ Proof not checked for event ${index}.`), errorBox(e));
  }
}
