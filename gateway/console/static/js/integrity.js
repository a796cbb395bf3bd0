// Integrity: the newest signed checkpoint verified in this page against
// the verifier key the user trusts, the chain and background verification
// state the server reports, and a proof check for any event.
import { app, setVerifierKey } from "./app.js";
import { h, clear, errorBox, field } from "./dom.js";
import { checkProof } from "./events.js";
import { openNote, parseCheckpoint, toHex } from "./verify.js";

export async function renderIntegrity(view, eventIndex) {
  const vkeyIn = h("input", { id: "vkey", value: app.vkey, spellcheck: "false", size: "70", placeholder: "name+hash+key from checkpoint.key.pub" });
  const vform = h("form", { class: "toolbar" }, h("div", { class: "field grow" }, h("label", { for: "vkey" }, "Checkpoint verifier key (from the operator: checkpoint.key.pub)"), vkeyIn),
    h("button", { type: "submit" }, "Use this key"));
  const cpBox = h("div", { id: "checkpoint-result", "aria-live": "polite" });
  const chainBox = h("div", { id: "chain-state" });
  const idxIn = h("input", { id: "proof-index", type: "number", min: "0", value: eventIndex || "" });
  const pform = h("form", { class: "toolbar" }, field("Event index", idxIn), h("button", { type: "submit", id: "proof-go" }, "Verify inclusion proof"));
  const proofBox = h("div", { class: "proof", "aria-live": "polite" });
  view.append(h("h1", {}, "Integrity"),
    h("section", { class: "card", "aria-labelledby": "cp-h" }, h("h2", { id: "cp-h" }, "Newest checkpoint, verified in this page"), vform, cpBox),
    h("section", { class: "card", "aria-labelledby": "ch-h" }, h("h2", { id: "ch-h" }, "Hash chain and background verification"), chainBox),
    h("section", { class: "card", "aria-labelledby": "pr-h" }, h("h2", { id: "pr-h" }, "Check an event's inclusion proof"), pform, proofBox));
  vform.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setVerifierKey(vkeyIn.value);
    checkpoint(cpBox);
  });
  pform.addEventListener("submit", (ev) => {
    ev.preventDefault();
    checkProof(app, proofBox, Number(idxIn.value));
  });
  checkpoint(cpBox);
  chain(chainBox);
  if (eventIndex) checkProof(app, proofBox, Number(eventIndex));
}

async function checkpoint(box) {
  clear(box).append(h("p", { class: "hint" }, "Fetching the newest checkpoint…"));
  try {
    const signed = await app.client.text("/audit/checkpoint");
    clear(box);
    if (!app.vkey) {
      box.append(h("p", { class: "warn" }, "No verifier key given: the signature is not checked."), h("pre", {}, signed));
      return;
    }
    const note = await openNote(signed, app.vkey);
    if (!note.ok) {
      box.append(h("p", { class: "bad", role: "status" }, "✗ Checkpoint signature FAILED: " + note.reason), h("pre", {}, signed));
      return;
    }
    const cp = parseCheckpoint(note.text);
    const sig = note.signatures.find((s) => s.valid);
    box.append(h("p", { class: "ok", role: "status" }, `✓ Signed by ${sig.name} (key hash ${sig.hash}), Ed25519 verified with WebCrypto`),
      h("dl", { class: "props" },
        h("dt", {}, "Log"), h("dd", {}, cp.origin),
        h("dt", {}, "Events covered"), h("dd", { id: "cp-size" }, cp.size.toLocaleString("en")),
        h("dt", {}, "Merkle root"), h("dd", { class: "mono" }, toHex(cp.root)),
        h("dt", {}, "Writers named"), h("dd", { class: "mono" }, cp.extensions.join("\n") || "—"),
        h("dt", {}, "Verifier key"), h("dd", { class: "mono" }, app.vkey)),
      h("details", {}, h("summary", {}, "Signed note"), h("pre", {}, signed)));
  } catch (e) {
    clear(box).append(errorBox(e));
  }
}

async function chain(box) {
  try {
    const rep = await app.client.get("/reports/compliance", { format: "json" });
    const c = rep.checks.find((x) => x.id === "audit-integrity");
    clear(box).append(h("p", {}, h("span", { class: "status-" + c.status }, c.status), " ", c.summary || ""),
      c.findings ? h("ul", {}, c.findings.map((f) => h("li", {}, f.resource + ": " + f.detail))) : null,
      h("p", { class: "hint" }, `${rep.events.toLocaleString("en")} events in your account's view; the server walks the whole chain in the background and reports it here.`));
  } catch (e) {
    clear(box).append(errorBox(e));
  }
}
