// Verification of keyledger's proofs in the browser, with WebCrypto only:
//   - signed notes (golang.org/x/mod/sumdb/note): Ed25519 signatures over
//     the note's text, verifier keys "<name>+<8 hex key hash>+<base64(0x01 ||
//     32-byte public key)>", the key hash being the first four bytes
//     (big-endian) of SHA-256(name || "\n" || 0x01 || public key);
//   - checkpoints (C2SP tlog-checkpoint): "<origin>\n<size>\n<base64 root>\n"
//     then extension lines;
//   - RFC 6962 Merkle inclusion proofs: leaf hash SHA-256(0x00 || event
//     bytes), node hash SHA-256(0x01 || left || right), checked with RFC
//     9162's algorithm (section 2.1.3.2).

const enc = new TextEncoder();

export function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const buf = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// keyHash is the note key hash of name and key (algorithm byte + public key).
export async function keyHash(name, key) {
  const h = await sha256(enc.encode(name + "\n"), key);
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

function validName(name) {
  return name !== "" && !/\s/u.test(name) && !name.includes("+");
}

// parseVerifierKey reads a note verifier key and checks its key hash.
export async function parseVerifierKey(vkey) {
  vkey = vkey.trim();
  // Cut as Go's note.NewVerifier does: the base64 key may hold "+".
  const i = vkey.indexOf("+");
  const j = i < 0 ? -1 : vkey.indexOf("+", i + 1);
  const name = i < 0 ? "" : vkey.slice(0, i);
  const hash16 = j < 0 ? "" : vkey.slice(i + 1, j);
  const key64 = j < 0 ? "" : vkey.slice(j + 1);
  if (!name || !hash16 || !key64 || hash16.length !== 8 || !/^[0-9a-f]{8}$/i.test(hash16) || !validName(name)) {
    throw new Error("malformed verifier key (want <name>+<8 hex digits>+<base64 key>)");
  }
  let key;
  try {
    key = b64decode(key64);
  } catch (_) {
    throw new Error("malformed verifier key: the key is not base64");
  }
  const hash = parseInt(hash16, 16) >>> 0;
  if ((await keyHash(name, key)) !== hash) throw new Error("verifier key hash does not match its name and key");
  if (key[0] !== 1 || key.length !== 33) throw new Error("verifier key is not an Ed25519 note key");
  return { name, hash, publicKey: key.slice(1), text: vkey };
}

// openNote verifies a signed note with a verifier key. It returns the
// note's text and what was checked; ok is true only when the signature of
// the verifier key's name and hash is present and valid.
export async function openNote(msg, vkeyText) {
  const out = { ok: false, text: "", signatures: [], reason: "" };
  for (const ch of msg) {
    const c = ch.codePointAt(0);
    if (c < 0x20 && ch !== "\n") {
      out.reason = "malformed note: control character";
      return out;
    }
  }
  const split = msg.lastIndexOf("\n\n");
  if (split < 0 || !msg.endsWith("\n")) {
    out.reason = "malformed note: no signature block";
    return out;
  }
  out.text = msg.slice(0, split + 1);
  const sigLines = msg.slice(split + 2, -1).split("\n");
  let vkey;
  try {
    vkey = await parseVerifierKey(vkeyText);
  } catch (e) {
    out.reason = e.message;
    return out;
  }
  const pub = await crypto.subtle.importKey("raw", vkey.publicKey, { name: "Ed25519" }, false, ["verify"]);
  for (const line of sigLines) {
    if (!line.startsWith("— ")) {
      out.reason = "malformed note: bad signature line";
      return out;
    }
    const [name, b64] = line.slice(2).split(" ");
    let sig;
    try {
      sig = b64decode(b64 || "");
    } catch (_) {
      out.reason = "malformed note: signature is not base64";
      return out;
    }
    if (!validName(name) || sig.length < 5) {
      out.reason = "malformed note: bad signature";
      return out;
    }
    const hash = ((sig[0] << 24) | (sig[1] << 16) | (sig[2] << 8) | sig[3]) >>> 0;
    const entry = { name, hash: hash.toString(16).padStart(8, "0"), known: name === vkey.name && hash === vkey.hash, valid: false };
    if (entry.known) {
      entry.valid = await crypto.subtle.verify({ name: "Ed25519" }, pub, sig.slice(4), enc.encode(out.text));
      if (!entry.valid) {
        out.signatures.push(entry);
        out.reason = "the signature of " + name + " (key hash " + entry.hash + ") is INVALID";
        return out;
      }
    }
    out.signatures.push(entry);
  }
  if (!out.signatures.some((s) => s.valid)) {
    out.reason = "no signature by the verifier key " + vkey.name + "+" + vkey.hash.toString(16).padStart(8, "0");
    return out;
  }
  out.ok = true;
  return out;
}

// parseCheckpoint reads a checkpoint's text (a verified note's).
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || lines[0] === "" || lines[lines.length - 1] !== "") throw new Error("malformed checkpoint");
  if (!/^\d+$/.test(lines[1])) throw new Error("malformed checkpoint size");
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new Error("malformed checkpoint root hash");
  return { origin: lines[0], size: Number(lines[1]), root, extensions: lines.slice(3, -1) };
}

export async function recordHash(bytes) {
  return sha256(new Uint8Array([0]), bytes);
}

async function nodeHash(left, right) {
  return sha256(new Uint8Array([1]), left, right);
}

// rootFromInclusion computes the root an inclusion proof leads to, or
// throws when the proof's length does not fit index and size (RFC 9162).
export async function rootFromInclusion(index, size, leaf, proof) {
  if (!(index >= 0 && index < size)) throw new Error("index " + index + " is not below the tree size " + size);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error("the proof is longer than the tree is deep");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the proof is shorter than the tree is deep");
  return r;
}

// verifyInclusion checks that event bytes are leaf index of the tree
// whose root a signed checkpoint states. It returns every step checked.
export async function verifyInclusion({ index, eventBytes, proof, checkpoint, vkey }) {
  const steps = [];
  const result = { ok: false, steps };
  const leaf = await recordHash(eventBytes);
  steps.push({ what: "leaf hash of event " + index, detail: "SHA-256(0x00 || " + eventBytes.length + " event bytes) = " + toHex(leaf), ok: true });
  const note = await openNote(checkpoint, vkey);
  steps.push({
    what: "checkpoint signature",
    detail: note.ok
      ? "Ed25519 signature by " + note.signatures.filter((s) => s.valid).map((s) => s.name + " (key hash " + s.hash + ")").join(", ") + " verified with " + vkey.trim()
      : note.reason,
    ok: note.ok,
  });
  if (!note.ok) return result;
  let cp;
  try {
    cp = parseCheckpoint(note.text);
  } catch (e) {
    steps.push({ what: "checkpoint", detail: e.message, ok: false });
    return result;
  }
  steps.push({ what: "checkpoint", detail: cp.origin + ", " + cp.size + " events, root " + toHex(cp.root), ok: true });
  let root;
  try {
    root = await rootFromInclusion(index, cp.size, leaf, proof.map(b64decode));
  } catch (e) {
    steps.push({ what: "inclusion proof", detail: e.message, ok: false });
    return result;
  }
  const ok = equal(root, cp.root);
  steps.push({
    what: "inclusion proof",
    detail: proof.length + " hashes lead to root " + toHex(root) + (ok ? ", the checkpoint's root" : ", NOT the checkpoint's root " + toHex(cp.root)),
    ok,
  });
  result.ok = ok;
  result.checkpoint = cp;
  return result;
}
