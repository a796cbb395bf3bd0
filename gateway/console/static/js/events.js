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
    this.drawnN = -1;
    this.schedule();
  }

  setFilter(f) {
    this.filter = f;
    this.shown = f ? this.items.filter(f) : this.items.slice();
    this.drawnN = -1;
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

  // draw shows the rows in view, reusing a pool of row elements: a jump
  // across a million rows costs as much as a small scroll.
  draw() {
    const n = this.shown.length;
    this.spacer.style.height = n * ROW + "px";
    const first = Math.max(0, Math.floor(this.el.scrollTop / ROW) - 5);
    const count = Math.ceil((this.el.clientHeight || 600) / ROW) + 10;
    if (first === this.drawnFirst && n === this.drawnN && count === this.drawnCount) return;
    this.drawnFirst = first;
    this.drawnN = n;
    this.drawnCount = count;
    this.pool = this.pool || [];
    this.rows.style.top = first * ROW + "px";
    const end = Math.min(n, first + count);
    for (let i = first; i < end; i++) {
      const slot = i - first;
      let row = this.pool[slot];
      if (!row) {
        row = this.newRow();
        this.pool[slot] = row;
      }
      if (!row.isConnected) this.rows.append(row);
      this.fill(row, this.shown[n - 1 - i]); // newest first
    }
    for (let k = end - first; k < this.pool.length; k++) this.pool[k].remove();
  }

  newRow() {
    const row = h("div", { class: "evrow", role: "listitem", tabindex: "0" },
      h("span", { class: "mono" }), h("span", { class: "c-time mono" }), h("span"), h("span", { class: "c-who" }), h("span"));
    row.addEventListener("click", () => this.onOpen(row.item));
    row.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        this.onOpen(row.item);
      }
    });
    return row;
  }

  fill(row, it) {
    row.item = it;
    const refused = !!it.error;
    row.className = "evrow" + (refused ? " refused" : "");
    row.dataset.index = it.index;
    row.setAttribute("aria-label", `event ${it.index} ${it.op} by ${who(it.who)} ${refused ? "refused: " + it.error.code : "allowed"}`);
    const [idx, time, op, by, result] = row.children;
    idx.textContent = it.index;
    time.textContent = fmtTime(it.time);
    op.textContent = it.op;
    by.textContent = who(it.who) + (this.showKey && it.keyId ? " · " + it.keyId.slice(0, 8) : "");
    by.title = it.who;
    result.className = refused ? "bad" : "ok";
    result.title = refused ? it.error.code : "allowed";
    result.textContent = refused ? it.error.code.replace(/Exception$/, "") : "allowed";
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
