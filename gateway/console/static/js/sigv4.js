// SigV4 signing in the browser (WebCrypto HMAC-SHA256), as the AWS SDKs
// sign: the secret never leaves this page. The day's signing key is derived
// once and kept as a non-extractable CryptoKey.

const enc = new TextEncoder();

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(data) {
  return hex(await crypto.subtle.digest("SHA-256", typeof data === "string" ? enc.encode(data) : data));
}

async function hmacRaw(key, data) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(data)));
}

// awsEscape percent-encodes everything but RFC 3986's unreserved characters.
export function awsEscape(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

// query builds a canonical (sorted, AWS-escaped) query string from an
// object, leaving out empty values.
export function query(params) {
  const pairs = [];
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    pairs.push(awsEscape(k) + "=" + awsEscape(String(v)));
  }
  pairs.sort();
  return pairs.join("&");
}

function amzDate(d) {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

export class Signer {
  #accessKeyId;
  #secret;
  #region;
  #keys = new Map(); // yyyymmdd → CryptoKey

  constructor(accessKeyId, secret, region) {
    this.#accessKeyId = accessKeyId;
    this.#secret = secret;
    this.#region = region;
  }

  get accessKeyId() {
    return this.#accessKeyId;
  }
  get region() {
    return this.#region;
  }

  async #signingKey(date) {
    let k = this.#keys.get(date);
    if (k) return k;
    let raw = await hmacRaw(enc.encode("AWS4" + this.#secret), date);
    raw = await hmacRaw(raw, this.#region);
    raw = await hmacRaw(raw, "kms");
    raw = await hmacRaw(raw, "aws4_request");
    k = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    raw.fill(0);
    this.#keys.clear();
    this.#keys.set(date, k);
    return k;
  }

  // sign returns the headers to send: X-Amz-Date, Authorization and the
  // given ones. path has no query string; canonicalQuery is query()'s.
  async sign(method, path, canonicalQuery, headers, body) {
    const now = new Date();
    const date = amzDate(now);
    const day = date.slice(0, 8);
    const all = { ...headers, host: location.host, "x-amz-date": date };
    const names = Object.keys(all).map((n) => n.toLowerCase()).sort();
    const lower = {};
    for (const [k, v] of Object.entries(all)) lower[k.toLowerCase()] = String(v).trim().replace(/\s+/g, " ");
    const canonicalHeaders = names.map((n) => n + ":" + lower[n] + "\n").join("");
    const signed = names.join(";");
    const creq = [method, path, canonicalQuery, canonicalHeaders, signed, await sha256Hex(body || "")].join("\n");
    const scope = day + "/" + this.#region + "/kms/aws4_request";
    const sts = ["AWS4-HMAC-SHA256", date, scope, await sha256Hex(creq)].join("\n");
    const key = await this.#signingKey(day);
    const sig = hex(await crypto.subtle.sign("HMAC", key, enc.encode(sts)));
    const out = { ...headers, "X-Amz-Date": date };
    out.Authorization = "AWS4-HMAC-SHA256 Credential=" + this.#accessKeyId + "/" + scope + ", SignedHeaders=" + signed + ", Signature=" + sig;
    return out;
  }
}
