// The console's API client: ordinary KMS (AWS JSON 1.1, POST /) and audit
// API (GET) calls, each signed with SigV4 in this page.
import { Signer, query } from "./sigv4.js";

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message || code);
    this.code = code;
    this.status = status;
  }
}

async function failure(res) {
  let code = "HTTP" + res.status;
  let message = res.statusText;
  try {
    const body = await res.json();
    code = body.__type || code;
    message = body.message || body.Message || message;
  } catch (_) {
    /* not JSON */
  }
  return new ApiError(code, message, res.status);
}

export class Client {
  #signer;

  constructor(accessKeyId, secret, region) {
    this.#signer = new Signer(accessKeyId, secret, region);
  }

  get accessKeyId() {
    return this.#signer.accessKeyId;
  }
  get region() {
    return this.#signer.region;
  }

  // kms calls one AWS KMS operation and returns its answer.
  async kms(op, input) {
    const body = JSON.stringify(input || {});
    const headers = await this.#signer.sign("POST", "/", "", {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": "TrentService." + op,
    }, body);
    const res = await fetch("/", { method: "POST", headers, body, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
    if (!res.ok) throw await failure(res);
    const text = await res.text();
    return text ? JSON.parse(text) : {};
  }

  async #get(path, params, extra, signal) {
    const q = query(params);
    const headers = await this.#signer.sign("GET", path, q, {}, "");
    Object.assign(headers, extra || {});
    const res = await fetch(path + (q ? "?" + q : ""), { headers, signal, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
    if (!res.ok) throw await failure(res);
    return res;
  }

  // get calls an audit endpoint and returns its JSON answer.
  async get(path, params) {
    return (await this.#get(path, params)).json();
  }

  // text calls an audit endpoint and returns its text answer.
  async text(path, params) {
    return (await this.#get(path, params)).text();
  }

  // stream reads Server-Sent Events from /audit/events: onEvent({id, event,
  // data}) for each, onLive() once history is caught up. It resolves when
  // the stream ends or signal aborts. lastEventId resumes after that index.
  async stream(params, { lastEventId, signal, onEvent, onLive }) {
    const extra = {};
    if (lastEventId !== undefined && lastEventId !== null && lastEventId !== "") extra["Last-Event-ID"] = String(lastEventId);
    const res = await this.#get("/audit/events", params, extra, signal);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const ev = { id: "", event: "message", data: "" };
          let comment = false;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) {
              if (line.trim() === ": live" && onLive) onLive();
              comment = true;
              continue;
            }
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            let v = i < 0 ? "" : line.slice(i + 1);
            if (v.startsWith(" ")) v = v.slice(1);
            if (field === "id") ev.id = v;
            else if (field === "event") ev.event = v;
            else if (field === "data") ev.data = ev.data ? ev.data + "\n" + v : v;
          }
          if (!comment || ev.data) onEvent(ev);
        }
      }
    } catch (e) {
      if (signal && signal.aborted) return;
      throw e;
    } finally {
      reader.releaseLock?.();
    }
  }
}
