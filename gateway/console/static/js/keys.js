// Keys: the filtered, paged list; creating keys; one key's settings,
// policy, grants, timeline, usage and time travel. Every action is one
// ordinary KMS API call, refused or allowed by the same policies.
import { app } from "./app.js";
import { h, clear, errorBox, field, fmtTime, toast } from "./dom.js";
import { EventList, eventDetail, parseEvent } from "./events.js";
import { barChart, chartBox, fillDays } from "./charts.js";

export const SPECS = ["SYMMETRIC_DEFAULT", "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
  "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87"];
const STATES = ["Enabled", "Disabled", "PendingDeletion", "PendingImport"];
const USAGES = ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"];
const GRANT_OPS = ["Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
  "Sign", "Verify", "GenerateMac", "VerifyMac", "DescribeKey", "GetPublicKey", "CreateGrant", "RetireGrant", "DeriveSharedSecret",
  "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"];

export function usagesFor(spec) {
  if (spec === "SYMMETRIC_DEFAULT") return ["ENCRYPT_DECRYPT"];
  if (spec.startsWith("HMAC")) return ["GENERATE_VERIFY_MAC"];
  if (spec.startsWith("RSA")) return ["ENCRYPT_DECRYPT", "SIGN_VERIFY"];
  if (spec === "SM2") return ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "KEY_AGREEMENT"];
  if (spec.startsWith("ECC_NIST_P")) return ["SIGN_VERIFY", "KEY_AGREEMENT"];
  return ["SIGN_VERIFY"];
}

function select(name, options, value, any) {
  const el = h("select", { name });
  if (any) el.append(h("option", { value: "" }, any));
  for (const o of options) el.append(h("option", { value: o }, o));
  el.value = value || "";
  return el;
}

function stateBadge(st) {
  return h("span", { class: "state state-" + st }, st);
}

function parseTags(text) {
  const tags = [];
  for (const part of text.split(",")) {
    const p = part.trim();
    if (!p) continue;
    const i = p.indexOf("=");
    tags.push({ TagKey: (i < 0 ? p : p.slice(0, i)).trim(), TagValue: i < 0 ? "" : p.slice(i + 1).trim() });
  }
  return tags;
}

// ---------------------------------------------------------------- the list

const listState = { filter: {}, markers: [""], page: 0 };

export async function renderKeys(view) {
  const f = listState.filter;
  const stateSel = select("state", STATES, f.state, "any state");
  const specSel = select("spec", SPECS, f.spec, "any spec");
  const usageSel = select("usage", USAGES, f.usage, "any usage");
  const aliasIn = h("input", { name: "alias", value: f.alias || "", spellcheck: "false", placeholder: "alias/…" });
  const tagIn = h("input", { name: "tag", value: f.tag || "", spellcheck: "false", placeholder: "key or key=value" });
  const qIn = h("input", { name: "q", type: "search", value: f.q || "", spellcheck: "false", placeholder: "id, description, alias" });
  const form = h("form", { class: "toolbar", role: "search", "aria-label": "Filter keys" },
    field("State", stateSel), field("Spec", specSel), field("Usage", usageSel), field("Alias", aliasIn), field("Tag", tagIn),
    h("div", { class: "field grow" }, h("label", { for: "keys-q" }, "Search"), Object.assign(qIn, { id: "keys-q" })),
    h("button", { type: "submit" }, "Filter"));
  const createBtn = h("button", { type: "button", id: "create-key-open", class: "secondary" }, "Create key");
  const createBox = h("div");
  const table = h("div", { "aria-live": "polite" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of keys" });
  view.append(h("div", { class: "toolbar" }, h("h1", {}, "Keys"), createBtn), createBox, form, table, pager);
  createBtn.addEventListener("click", () => {
    clear(createBox);
    createBox.append(createForm());
    createBox.querySelector("input,select").focus();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    listState.filter = { state: stateSel.value, spec: specSel.value, usage: usageSel.value, alias: aliasIn.value.trim(), tag: tagIn.value.trim(), q: qIn.value.trim() };
    listState.markers = [""];
    listState.page = 0;
    load();
  });

  async function load() {
    clear(table);
    clear(pager);
    table.append(h("p", { class: "hint" }, "Loading…"));
    const started = performance.now();
    let res;
    let note = null;
    try {
      res = await app.client.get("/audit/keys", { ...listState.filter, marker: listState.markers[listState.page], limit: 100 });
    } catch (e) {
      if (e.code !== "AccessDeniedException") {
        clear(table).append(errorBox(e));
        return;
      }
      // Without keyledger:ReadAudit: the plain KMS calls (ListKeys, then
      // DescribeKey and ListAliases per key shown), unfiltered.
      try {
        res = await listWithKMS(listState.markers[listState.page]);
        note = h("p", { class: "hint", id: "keys-fallback" }, "Listed with ListKeys and DescribeKey: filtering and the total need keyledger:ReadAudit (" + e.message + ")");
      } catch (e2) {
        clear(table).append(errorBox(e), errorBox(e2));
        return;
      }
    }
    clear(table);
    if (note) table.append(note);
    const t = h("table", { class: "keys" },
      h("caption", { class: "sr" }, "Keys"),
      h("thead", {}, h("tr", {}, ["Alias", "Key ID", "Description", "State", "Spec", "Usage", "Created"].map((c) =>
        h("th", { scope: "col", class: "c-" + c.toLowerCase().replace(" ", "") }, c)))));
    const body = h("tbody");
    for (const k of res.keys) {
      body.append(h("tr", { "data-key": k.keyId },
        h("td", {}, k.aliases.join(", ") || "—"),
        h("td", { class: "mono" }, h("a", { href: "#/key/" + k.keyId }, k.keyId)),
        h("td", {}, k.description),
        h("td", {}, stateBadge(k.keyState)),
        h("td", { class: "c-spec" }, k.keySpec),
        h("td", { class: "c-usage" }, k.keyUsage),
        h("td", { class: "c-created mono" }, fmtTime(k.creationDate))));
    }
    t.append(body);
    table.append(t);
    const from = listState.page * 100;
    const took = Math.round(performance.now() - started);
    const of = note ? (res.nextMarker ? " of more" : "") : ` of ${res.total.toLocaleString("en")}`;
    const info = h("span", { id: "keys-count", "data-ms": took }, res.keys.length ? `${from + 1}–${from + res.keys.length}${of} keys` : "No keys match.");
    const prev = h("button", { type: "button", class: "secondary", disabled: listState.page === 0 }, "Previous page");
    const next = h("button", { type: "button", class: "secondary", id: "keys-next", disabled: !res.nextMarker }, "Next page");
    prev.addEventListener("click", () => {
      listState.page--;
      load();
    });
    next.addEventListener("click", () => {
      listState.markers[listState.page + 1] = res.nextMarker;
      listState.page++;
      load();
    });
    pager.append(prev, info, next);
  }
  await load();
}

// listWithKMS lists a page of keys with the plain KMS API.
async function listWithKMS(marker) {
  const page = await app.client.kms("ListKeys", marker ? { Limit: 100, Marker: marker } : { Limit: 100 });
  const keys = await Promise.all((page.Keys || []).map(async (k) => {
    const row = { keyId: k.KeyId, arn: k.KeyArn, aliases: [], description: "", keyState: "?", keySpec: "", keyUsage: "", creationDate: "" };
    try {
      const m = (await app.client.kms("DescribeKey", { KeyId: k.KeyId })).KeyMetadata;
      Object.assign(row, { description: m.Description || "", keyState: m.KeyState, keySpec: m.KeySpec, keyUsage: m.KeyUsage, creationDate: m.CreationDate });
    } catch (e) {
      row.keyState = e.code || "unreadable";
    }
    return row;
  }));
  const total = (listState.page * 100) + keys.length + (page.Truncated ? 1 : 0);
  return { keys, total, nextMarker: page.Truncated ? page.NextMarker : "" };
}

function createForm() {
  const desc = h("input", { name: "description", id: "ck-desc" });
  const spec = select("spec", SPECS, "SYMMETRIC_DEFAULT");
  spec.id = "ck-spec";
  const usage = select("usage", usagesFor("SYMMETRIC_DEFAULT"), "ENCRYPT_DECRYPT");
  usage.id = "ck-usage";
  spec.addEventListener("change", () => {
    clear(usage);
    for (const u of usagesFor(spec.value)) usage.append(h("option", { value: u }, u));
  });
  const alias = h("input", { name: "alias", id: "ck-alias", spellcheck: "false", placeholder: "alias/my-key" });
  const tags = h("input", { name: "tags", id: "ck-tags", spellcheck: "false", placeholder: "team=payments, env=prod" });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", "aria-label": "Create key" }, h("h2", {}, "Create a key"),
    h("div", { class: "toolbar" }, field("Description", desc), field("Key spec", spec), field("Key usage", usage), field("Alias", alias), field("Tags", tags)),
    h("button", { type: "submit", id: "ck-submit" }, "Create key"), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(out);
    try {
      const input = { Description: desc.value, KeySpec: spec.value, KeyUsage: usage.value };
      const t = parseTags(tags.value);
      if (t.length) input.Tags = t;
      const res = await app.client.kms("CreateKey", input);
      const id = res.KeyMetadata.KeyId;
      if (alias.value.trim()) {
        const name = alias.value.trim().startsWith("alias/") ? alias.value.trim() : "alias/" + alias.value.trim();
        await app.client.kms("CreateAlias", { AliasName: name, TargetKeyId: id });
      }
      toast("Created key " + id);
      location.hash = "#/key/" + id;
    } catch (e) {
      out.append(errorBox(e));
    }
  });
  return form;
}

// ---------------------------------------------------------------- one key

const TABS = [["overview", "Overview"], ["policy", "Policy"], ["grants", "Grants"], ["timeline", "Timeline"], ["timetravel", "Time travel"]];

export async function renderKey(view, id, tab, arg) {
  const head = h("div");
  view.append(head);
  let meta;
  try {
    meta = (await app.client.kms("DescribeKey", { KeyId: id })).KeyMetadata;
  } catch (e) {
    head.append(h("h1", {}, "Key " + id), errorBox(e));
    meta = null;
  }
  let aliases = [];
  try {
    aliases = (await app.client.kms("ListAliases", { KeyId: id })).Aliases || [];
  } catch (_) {
    /* shown where it matters */
  }
  head.append(h("p", {}, h("a", { href: "#/keys" }, "← Keys")),
    h("h1", {}, (aliases.map((a) => a.AliasName).join(", ") || "Key") + " ", h("span", { class: "mono" }, id), " ", meta ? stateBadge(meta.KeyState) : ""));
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Key sections" });
  const panel = h("section", { role: "tabpanel", id: "key-panel" });
  for (const [t, label] of TABS) {
    const b = h("button", { type: "button", role: "tab", id: "tab-" + t, "aria-selected": String(t === tab), "aria-controls": "key-panel", tabindex: t === tab ? "0" : "-1" }, label);
    b.addEventListener("click", () => (location.hash = "#/key/" + id + "/" + t));
    b.addEventListener("keydown", (ev) => {
      const i = TABS.findIndex((x) => x[0] === t);
      const j = ev.key === "ArrowRight" ? i + 1 : ev.key === "ArrowLeft" ? i - 1 : -1;
      if (j >= 0 && j < TABS.length) location.hash = "#/key/" + id + "/" + TABS[j][0];
    });
    tabs.append(b);
  }
  panel.setAttribute("aria-labelledby", "tab-" + tab);
  view.append(tabs, panel);
  const again = () => {
    const v = clear(document.getElementById("view"));
    renderKey(v, id, tab, arg).catch((e) => v.append(errorBox(e)));
  };
  switch (tab) {
    case "policy":
      return policyTab(panel, id);
    case "grants":
      return grantsTab(panel, id);
    case "timeline":
      return timelineTab(panel, id);
    case "timetravel":
      return timeTravelTab(panel, id, arg);
    default:
      if (meta) return overviewTab(panel, id, meta, aliases, again);
  }
}

// act runs one KMS call from a button, showing AWS's error where it failed.
async function act(out, fn, done) {
  clear(out);
  try {
    await fn();
    if (done) done();
  } catch (e) {
    out.append(errorBox(e));
  }
}

async function overviewTab(panel, id, m, aliases, again) {
  const out = h("div", { "aria-live": "polite", id: "key-errors" });
  const props = h("dl", { class: "props" });
  const prop = (k, v) => props.append(h("dt", {}, k), h("dd", {}, v ?? "—"));
  prop("ARN", h("span", { class: "mono" }, m.Arn));
  prop("Description", m.Description || "—");
  prop("State", stateBadge(m.KeyState));
  prop("Spec · usage", m.KeySpec + " · " + m.KeyUsage);
  prop("Origin", m.Origin);
  prop("Created", fmtTime(m.CreationDate));
  if (m.DeletionDate) prop("Deletion date", fmtTime(m.DeletionDate));
  const actions = h("div", { class: "actions" });
  const btn = (label, idAttr, fn, cls) => {
    const b = h("button", { type: "button", id: idAttr, class: cls || "secondary" }, label);
    b.addEventListener("click", () => act(out, fn, again));
    actions.append(b);
  };
  if (m.KeyState === "Enabled") btn("Disable key", "key-disable", () => app.client.kms("DisableKey", { KeyId: id }));
  if (m.KeyState === "Disabled") btn("Enable key", "key-enable", () => app.client.kms("EnableKey", { KeyId: id }));
  if (m.KeyState === "PendingDeletion") btn("Cancel deletion", "key-cancel-deletion", () => app.client.kms("CancelKeyDeletion", { KeyId: id }));
  else {
    const days = h("input", { type: "number", min: "7", max: "30", value: "30", id: "key-window", class: "narrow-num" });
    const b = h("button", { type: "button", class: "danger", id: "key-schedule-deletion" }, "Schedule deletion");
    b.addEventListener("click", () => act(out, () => app.client.kms("ScheduleKeyDeletion", { KeyId: id, PendingWindowInDays: Number(days.value) }), again));
    actions.append(h("span", { class: "inline" }, h("label", { for: "key-window", class: "inline" }, "Window (days)"), days, " ", b));
  }
  if (m.KeySpec === "SYMMETRIC_DEFAULT") btn("Rotate now", "key-rotate", async () => {
    await app.client.kms("RotateKeyOnDemand", { KeyId: id });
    toast("Rotated");
  });
  const usageCard = h("div", { class: "card", id: "usage-card" }, h("h2", {}, "Usage"));
  panel.append(h("div", { class: "grid2" }, h("div", { class: "card" }, h("h2", {}, "Settings"), props, actions, out), usageCard));
  usageChart(usageCard, id);

  // Description
  const descIn = h("input", { id: "key-desc", value: m.Description || "" });
  const descForm = h("form", { class: "toolbar" }, field("Description", descIn), h("button", { type: "submit" }, "Save description"));
  descForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(out, () => app.client.kms("UpdateKeyDescription", { KeyId: id, Description: descIn.value }), again);
  });

  // Rotation
  const rot = h("div");
  if (m.KeySpec === "SYMMETRIC_DEFAULT" && m.Origin !== "EXTERNAL") {
    try {
      const st = await app.client.kms("GetKeyRotationStatus", { KeyId: id });
      const on = h("input", { type: "checkbox", id: "rot-on", checked: st.KeyRotationEnabled });
      const period = h("input", { type: "number", id: "rot-period", min: "90", max: "2560", value: String(st.RotationPeriodInDays || 365) });
      const f = h("form", { class: "toolbar" }, h("div", { class: "field" }, h("label", { for: "rot-on" }, "Automatic rotation"), on),
        field("Period (days)", period), h("button", { type: "submit" }, "Save rotation"),
        st.NextRotationDate ? h("span", { class: "hint" }, "next: " + fmtTime(st.NextRotationDate)) : null);
      f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        act(out, () => on.checked ? app.client.kms("EnableKeyRotation", { KeyId: id, RotationPeriodInDays: Number(period.value) })
          : app.client.kms("DisableKeyRotation", { KeyId: id }), again);
      });
      rot.append(f);
    } catch (e) {
      rot.append(errorBox(e));
    }
  }

  // Aliases
  const aliasList = h("ul");
  for (const a of aliases) {
    const del = h("button", { type: "button", class: "secondary", "aria-label": "Delete " + a.AliasName }, "Delete");
    del.addEventListener("click", () => act(out, () => app.client.kms("DeleteAlias", { AliasName: a.AliasName }), again));
    aliasList.append(h("li", {}, h("span", { class: "mono" }, a.AliasName), " ", del));
  }
  const aliasIn = h("input", { id: "alias-new", placeholder: "alias/name", spellcheck: "false" });
  const aliasForm = h("form", { class: "toolbar" }, field("New alias", aliasIn), h("button", { type: "submit" }, "Add alias"));
  aliasForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = aliasIn.value.trim();
    act(out, () => app.client.kms("CreateAlias", { AliasName: n.startsWith("alias/") ? n : "alias/" + n, TargetKeyId: id }), again);
  });

  // Tags
  const tagList = h("ul");
  try {
    const tags = (await app.client.kms("ListResourceTags", { KeyId: id })).Tags || [];
    for (const t of tags) {
      const del = h("button", { type: "button", class: "secondary", "aria-label": "Remove tag " + t.TagKey }, "Remove");
      del.addEventListener("click", () => act(out, () => app.client.kms("UntagResource", { KeyId: id, TagKeys: [t.TagKey] }), again));
      tagList.append(h("li", {}, h("span", { class: "mono" }, t.TagKey + " = " + t.TagValue), " ", del));
    }
  } catch (e) {
    tagList.append(h("li", {}, errorBox(e)));
  }
  const tagIn = h("input", { id: "tag-new", placeholder: "key=value", spellcheck: "false" });
  const tagForm = h("form", { class: "toolbar" }, field("New tag", tagIn), h("button", { type: "submit" }, "Add tag"));
  tagForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(out, () => app.client.kms("TagResource", { KeyId: id, Tags: parseTags(tagIn.value) }), again);
  });

  panel.append(h("div", { class: "grid2" },
    h("div", { class: "card" }, h("h2", {}, "Description and rotation"), descForm, rot),
    h("div", { class: "card" }, h("h2", {}, "Aliases"), aliasList, aliasForm, h("h2", {}, "Tags"), tagList, tagForm)));

}

async function usageChart(card, id) {
  try {
    const u = await app.client.get("/audit/keys/" + encodeURIComponent(id) + "/usage");
    const { unit, points } = fillDays(u.days);
    card.append(chartBox(barChart({ title: "Successful cryptographic operations", points, yUnit: "operations per " + unit, xTitle: unit + " (UTC)" }),
      "Counted by the ledger's live aggregates: every successful Encrypt, Decrypt, Sign, GenerateMac… on this key, whoever called."));
  } catch (e) {
    card.append(errorBox(e));
  }
}

async function policyTab(panel, id) {
  const out = h("div", { "aria-live": "polite", id: "policy-result" });
  const ta = h("textarea", { id: "policy-text", rows: "22", spellcheck: "false" });
  const save = h("button", { type: "submit", id: "policy-save" }, "Save policy");
  const form = h("form", { class: "card", "aria-label": "Key policy" }, h("label", { for: "policy-text" }, "Key policy (JSON)"), ta,
    h("div", { class: "actions" }, save, h("span", { class: "hint" }, "Saved with PutKeyPolicy: AWS's validation errors are shown as the API gives them.")), out);
  panel.append(form);
  try {
    const p = await app.client.kms("GetKeyPolicy", { KeyId: id, PolicyName: "default" });
    try {
      ta.value = JSON.stringify(JSON.parse(p.Policy), null, 2);
    } catch (_) {
      ta.value = p.Policy;
    }
  } catch (e) {
    out.append(errorBox(e));
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear(out);
    try {
      await app.client.kms("PutKeyPolicy", { KeyId: id, PolicyName: "default", Policy: ta.value });
      out.append(h("p", { class: "ok", role: "status" }, "Policy saved."));
    } catch (e) {
      out.append(errorBox(e));
    }
  });
}

async function grantsTab(panel, id) {
  const out = h("div", { "aria-live": "polite" });
  const table = h("div");
  const grantee = h("input", { id: "grant-grantee", spellcheck: "false", placeholder: "arn:aws:iam::111122223333:user/alice" });
  const retiring = h("input", { id: "grant-retiring", spellcheck: "false", placeholder: "(optional)" });
  const name = h("input", { id: "grant-name", spellcheck: "false" });
  const ops = h("fieldset", { class: "toolbar" }, h("legend", {}, "Operations"),
    GRANT_OPS.map((op) => h("label", { class: "inline" }, h("input", { type: "checkbox", value: op, checked: op === "Decrypt" }), " " + op)));
  const form = h("form", { class: "card", "aria-label": "Create grant" }, h("h2", {}, "Create a grant"),
    h("div", { class: "toolbar" }, field("Grantee principal", grantee), field("Retiring principal", retiring), field("Name", name)), ops,
    h("button", { type: "submit" }, "Create grant"), out);
  panel.append(h("div", { class: "card" }, h("h2", {}, "Grants"), table), form);
  async function load() {
    clear(table);
    try {
      const gs = (await app.client.kms("ListGrants", { KeyId: id })).Grants || [];
      if (!gs.length) {
        table.append(h("p", { class: "hint" }, "No grants."));
        return;
      }
      const body = h("tbody");
      for (const g of gs) {
        const retire = h("button", { type: "button", class: "secondary" }, "Retire");
        retire.addEventListener("click", () => act(out, () => app.client.kms("RetireGrant", { KeyId: id, GrantId: g.GrantId }), load));
        const revoke = h("button", { type: "button", class: "danger" }, "Revoke");
        revoke.addEventListener("click", () => act(out, () => app.client.kms("RevokeGrant", { KeyId: id, GrantId: g.GrantId }), load));
        body.append(h("tr", {}, h("td", { class: "mono" }, g.GrantId.slice(0, 16) + "…"), h("td", {}, g.Name || ""),
          h("td", { class: "mono" }, g.GranteePrincipal), h("td", {}, (g.Operations || []).join(", ")), h("td", {}, fmtTime(g.CreationDate)),
          h("td", {}, retire, " ", revoke)));
      }
      table.append(h("table", {}, h("thead", {}, h("tr", {}, ["Grant", "Name", "Grantee", "Operations", "Created", ""].map((c) => h("th", { scope: "col" }, c)))), body));
    } catch (e) {
      table.append(errorBox(e));
    }
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = { KeyId: id, GranteePrincipal: grantee.value.trim(), Operations: [...ops.querySelectorAll("input:checked")].map((i) => i.value) };
    if (retiring.value.trim()) input.RetiringPrincipal = retiring.value.trim();
    if (name.value.trim()) input.Name = name.value.trim();
    act(out, () => app.client.kms("CreateGrant", input), load);
  });
  await load();
}

// WINDOW is how many ledger events one page of a key's timeline reads:
// the newest window streams on live; older ones load on request. A key
// with a million events is read a window at a time, never all at once.
const WINDOW = 50000;

async function timelineTab(panel, id) {
  const status = h("span", { class: "hint", role: "status", id: "timeline-status" }, "reading the key's history from the ledger…");
  const older = h("button", { type: "button", class: "secondary", id: "timeline-older", hidden: true }, "Load older events");
  const detail = h("section", { class: "card", id: "timeline-detail", "aria-label": "Event detail" }, h("p", { class: "hint" }, "Choose an event: who, what, when, allowed or refused and why; its CloudTrail record and proof."));
  const list = new EventList({
    label: "Every event of this key, newest first", showKey: false,
    onOpen: (it) => {
      const before = h("button", { type: "button", class: "secondary", id: "travel-before" }, "State just before this event");
      before.addEventListener("click", () => {
        const t = new Date(new Date(it.time).getTime() - 1).toISOString();
        location.hash = "#/key/" + id + "/timetravel/" + encodeURIComponent(t);
      });
      eventDetail(app, detail, it, [before]);
    },
  });
  const changesOnly = h("input", { type: "checkbox", id: "timeline-changes" });
  const refusedOnly = h("input", { type: "checkbox", id: "timeline-refused" });
  const refilter = () => {
    const c = changesOnly.checked;
    const r = refusedOnly.checked;
    list.setFilter(c || r ? (it) => (!c || !/^(Describe|List|Get)/.test(it.op)) && (!r || it.error) : null);
  };
  changesOnly.addEventListener("change", refilter);
  refusedOnly.addEventListener("change", refilter);
  panel.append(h("p", {}, status, " ", older),
    h("div", { class: "toolbar" }, h("label", { class: "inline", for: "timeline-changes" }, changesOnly, " Hide reads (Describe, List, Get)"),
      h("label", { class: "inline", for: "timeline-refused" }, refusedOnly, " Refusals only")),
    h("div", { class: "grid2" }, h("div", {}, list.header(), list.el), detail));
  const ctl = new AbortController();
  app.stop = () => ctl.abort();
  let n = 0;
  let refused = 0;
  let from = 0; // the oldest ledger index read
  let live = false;
  const say = () => {
    status.textContent = `${n.toLocaleString("en")} events (${refused.toLocaleString("en")} refused)` +
      (from > 0 ? ` in the ledger from event ${from.toLocaleString("en")} on` : ", the key's whole history") + (live ? "; live" : "");
    older.hidden = from === 0;
  };
  const count = (it) => {
    n++;
    if (it.error) refused++;
  };
  list.draw();
  let size = 0;
  try {
    size = Number((await app.client.text("/audit/checkpoint")).split("\n")[1]) || 0;
  } catch (_) {
    /* read the whole history */
  }
  from = Math.max(0, size - WINDOW);
  older.addEventListener("click", async () => {
    older.disabled = true;
    const hi = from;
    const lo = Math.max(0, hi - WINDOW);
    const page = [];
    try {
      await app.client.stream({ key: id, before: hi, since: lo === 0 ? "1970-01-01T00:00:00Z" : "" }, {
        lastEventId: lo === 0 ? undefined : lo - 1,
        signal: ctl.signal,
        onEvent: (ev) => {
          const it = parseEvent(ev);
          count(it);
          page.push(it);
        },
      });
      from = lo;
      list.prepend(page);
    } catch (e) {
      panel.prepend(errorBox(e));
    }
    older.disabled = false;
    say();
  });
  app.client.stream({ key: id, since: from === 0 ? "1970-01-01T00:00:00Z" : "" }, {
    lastEventId: from === 0 ? undefined : from - 1,
    signal: ctl.signal,
    onLive: () => {
      live = true;
      say();
      status.dataset.live = "1";
    },
    onEvent: (ev) => {
      const it = parseEvent(ev);
      count(it);
      list.add(it);
      if (live) say();
    },
  }).catch((e) => panel.prepend(errorBox(e)));
}

async function timeTravelTab(panel, id, at) {
  const when = at || new Date().toISOString();
  const input = h("input", { id: "tt-when", value: when, spellcheck: "false", size: "32" });
  const local = h("input", { id: "tt-local", type: "datetime-local", step: "1" });
  local.addEventListener("change", () => {
    if (local.value) input.value = new Date(local.value + "Z").toISOString();
  });
  const form = h("form", { class: "toolbar card", "aria-label": "Time travel" }, field("Instant (UTC, RFC 3339)", input), field("or pick (UTC)", local),
    h("button", { type: "submit", id: "tt-go" }, "Show the key then"));
  const out = h("div", { id: "tt-result", "aria-live": "polite" });
  panel.append(form, out);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#/key/" + id + "/timetravel/" + encodeURIComponent(input.value.trim());
  });
  if (!at) return;
  out.append(h("p", { class: "hint" }, "Folding the ledger up to " + at + "…"));
  let ans;
  try {
    ans = await app.client.get("/audit/keys/" + encodeURIComponent(id), { asOf: at });
  } catch (e) {
    clear(out).append(errorBox(e));
    return;
  }
  clear(out);
  out.append(h("p", {}, `As of ${ans.asOf}: ${ans.eventsFolded.toLocaleString("en")} events folded` + (ans.snapshotIndex !== undefined ? ` (from the snapshot at event ${ans.snapshotIndex})` : "")));
  const k = ans.key;
  if (!ans.exists || !k) {
    out.append(h("p", { class: "warn", id: "tt-state" }, ans.deleted ? "The key was deleted by then." : "The key did not exist then."));
    return;
  }
  let policy = "";
  try {
    policy = JSON.stringify(k.policy, null, 2);
  } catch (_) {
    policy = String(k.policy);
  }
  out.append(h("div", { class: "grid2" },
    h("div", { class: "card" }, h("h2", {}, "State then"), h("dl", { class: "props" },
      h("dt", {}, "State"), h("dd", { id: "tt-state" }, stateBadge(k.keyState)),
      h("dt", {}, "Description"), h("dd", {}, k.description || "—"),
      h("dt", {}, "Aliases"), h("dd", {}, (k.aliases || []).join(", ") || "—"),
      h("dt", {}, "Tags"), h("dd", {}, Object.entries(k.tags || {}).map(([a, b]) => a + "=" + b).join(", ") || "—"),
      h("dt", {}, "Rotation"), h("dd", {}, k.rotationPeriodInDays ? "every " + k.rotationPeriodInDays + " days" : "off"),
      h("dt", {}, "Key materials"), h("dd", {}, String(k.keyMaterials)),
      h("dt", {}, "Deletion date"), h("dd", {}, k.deletionDate ? fmtTime(k.deletionDate) : "—")),
    h("h2", {}, "Who could decrypt"),
    h("ul", { id: "tt-who" }, (ans.whoCouldDecrypt || []).map((a) => h("li", {}, h("span", { class: "mono" }, a.principal), " — " + a.via))),
    h("h2", {}, "Grants"),
    h("ul", {}, (k.grants || []).map((g) => h("li", { class: "mono" }, g.granteePrincipal + ": " + g.operations.join(", "))), (k.grants || []).length ? null : h("li", {}, "none"))),
    h("div", { class: "card" }, h("h2", {}, "Key policy then"), h("pre", { id: "tt-policy" }, policy))));
}
