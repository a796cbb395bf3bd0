// Live audit: the SSE stream of the caller's account's events, with
// filters, pause/resume that loses nothing (Last-Event-ID), each event's
// CloudTrail view and proof.
import { app } from "./app.js";
import { h, errorBox, field } from "./dom.js";
import { EventList, eventDetail, parseEvent } from "./events.js";

const RECENT = 2000; // events of history a fresh stream shows

export async function renderAudit(view) {
  const keyIn = h("input", { name: "key", spellcheck: "false", placeholder: "key id or ARN" });
  const evIn = h("input", { name: "event", spellcheck: "false", placeholder: "e.g. Encrypt" });
  const whoIn = h("input", { name: "principal", spellcheck: "false", placeholder: "part of an ARN" });
  const refusedIn = h("input", { type: "checkbox", name: "refused", id: "audit-refused" });
  const status = h("span", { class: "hint", role: "status", id: "audit-status" }, "connecting…");
  const pause = h("button", { type: "button", id: "audit-pause", "aria-pressed": "false" }, "Pause");
  const detail = h("section", { class: "card", id: "audit-detail", "aria-label": "Event detail" }, h("p", { class: "hint" }, "Choose an event to see its CloudTrail record and check its proof."));
  const list = new EventList({ label: "Audit events, newest first", onOpen: (it) => eventDetail(app, detail, it) });
  const form = h("form", { class: "toolbar", "aria-label": "Audit filters" },
    field("Key", keyIn), field("Event", evIn), field("Principal", whoIn),
    h("div", { class: "field" }, h("label", { for: "audit-refused" }, "Refusals only"), refusedIn),
    h("button", { type: "submit" }, "Apply"), pause, status);
  view.append(h("h1", {}, "Live audit"), form, h("div", { class: "grid2" }, h("div", {}, list.header(), list.el), detail));

  let ctl = null;
  let last = null; // the last event index received
  let paused = false;
  let serverFilter = {};
  let count = 0;

  const localFilter = () => {
    const w = whoIn.value.trim();
    const r = refusedIn.checked;
    list.setFilter(w || r ? (it) => (!w || it.who.includes(w)) && (!r || it.error) : null);
  };

  // start picks where a fresh stream begins: the newest RECENT events of
  // the ledger (its size from a checkpoint), or the whole of a small one.
  async function start() {
    try {
      const size = Number((await app.client.text("/audit/checkpoint")).split("\n")[1]);
      if (size > RECENT) return { after: size - RECENT - 1 };
    } catch (_) {
      /* no checkpoint to read: from the start */
    }
    return { since: "1970-01-01T00:00:00Z" };
  }

  async function connect() {
    ctl = new AbortController();
    const mine = ctl;
    status.textContent = last === null ? "catching up…" : `resuming after event ${last}…`;
    try {
      const from = last === null ? await start() : { after: last };
      if (mine.signal.aborted) return;
      await app.client.stream({ ...serverFilter, since: from.since }, {
        lastEventId: from.after,
        signal: mine.signal,
        onLive: () => (status.textContent = "live"),
        onEvent: (ev) => {
          const it = parseEvent(ev);
          last = it.index;
          count++;
          list.add(it);
          if (status.textContent === "live") status.textContent = "live";
        },
      });
      if (!mine.signal.aborted) status.textContent = "the stream ended; reconnecting…";
    } catch (e) {
      if (mine.signal.aborted) return;
      status.textContent = "";
      status.append(errorBox(e));
      return;
    }
    if (!mine.signal.aborted && !paused) setTimeout(() => !mine.signal.aborted && connect(), 1000);
  }

  function stop() {
    if (ctl) ctl.abort();
  }
  app.stop = stop;

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (paused) {
      stop();
      status.textContent = `paused after event ${last ?? "—"} (${count} received)`;
    } else {
      connect();
    }
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = { key: keyIn.value.trim(), event: evIn.value.trim() };
    if (next.key !== (serverFilter.key || "") || next.event !== (serverFilter.event || "")) {
      stop();
      serverFilter = next;
      list.items = [];
      last = null;
      count = 0;
      localFilter();
      if (!paused) connect();
    } else {
      localFilter();
    }
  });
  refusedIn.addEventListener("change", localFilter);
  list.draw();
  connect();
}
