// @ts-check
// glagol's typed client: the OpenAPI routes through openapi-fetch (typed by
// the generated schema.d.ts), plus what OpenAPI cannot describe — server-sent
// events over fetch (so the key stays in a header), uploads with byte
// progress (fetch cannot report them), and the `/v1/ws` live protocol with
// the key as a WebSocket subprotocol (browsers cannot set headers there).
// The server's own page imports this same file from `/ui/glagol.js`.

import createClient from "./vendor/openapi-fetch.js";

/** @typedef {import("./schema").paths} paths */
/** @typedef {import("./schema").components["schemas"]} schemas */
/** @typedef {schemas["Job"]} Job */
/** @typedef {schemas["ModelInfo"]} ModelInfo */

/**
 * A live result word.
 * @typedef {{ word: string, start: number, end: number, probability: number }} LiveWord
 */
/**
 * Server messages of `/v1/ws` (docs/streaming.md).
 * @typedef {{ type: "ready", protocol_version: string, version: string, model: string,
 *   sample_rate: number, encoding: string, partials: boolean, max_session_secs: number,
 *   idle_timeout_secs: number, max_backlog_secs: number, diarization: boolean }} LiveReady
 * @typedef {{ type: "speech_started" | "speech_stopped", utterance_id: number,
 *   start?: number, end?: number }} LiveBoundary
 * @typedef {{ type: "partial" | "final", utterance_id: number, text: string, start: number,
 *   end: number, words: LiveWord[], is_final: boolean, stable_words?: number,
 *   endpoint_reason?: string, language?: string, processing_ms: number, timestamp: number,
 *   speaker?: string }} LiveResult
 * @typedef {{ type: "error", code: string, message: string, utterance_id?: number,
 *   retry_after_ms?: number }} LiveError
 * @typedef {LiveReady | LiveBoundary | LiveResult | LiveError} LiveMessage
 */
/**
 * Settings of a live session (the query string of `/v1/ws`).
 * @typedef {{ sampleRate?: number, model?: string, language?: string, partials?: boolean,
 *   diarize?: boolean, silenceMs?: number, encoding?: "pcm_s16le" | "pcm_f32le" }} LiveOptions
 */
/** @typedef {{ event: string, id: string | null, data: any }} ServerEvent */

/** A typed refusal: the server's `{"error": {"code", "message"}}` and status. */
export class GlagolError extends Error {
  /**
   * @param {number} status HTTP status (0: no answer)
   * @param {string} code
   * @param {string} message
   * @param {number | null} [retryAfter] seconds, from `Retry-After`
   */
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "GlagolError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /**
   * The error a refused response carries. `body` is its parsed body when
   * it was read already (openapi-fetch reads it into `error`).
   * @param {Response} response
   * @param {any} [body]
   */
  static async from(response, body) {
    const retry = Number(response.headers.get("retry-after"));
    let code = `http_${response.status}`;
    let message = response.statusText || "request failed";
    try {
      body ??= await response.json();
      code = body?.error?.code ?? code;
      message = body?.error?.message ?? message;
    } catch {
      // not the JSON envelope (a proxy's page, say): keep the status line
    }
    return new GlagolError(response.status, code, message, Number.isFinite(retry) && retry > 0 ? retry : null);
  }
}

const sleep = (/** @type {number} */ ms, /** @type {AbortSignal | undefined} */ signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });

/** The directory of the current page, so a server under a sub-path works. */
function pageBase() {
  if (typeof document === "undefined") return "";
  return new URL(".", document.baseURI).href.replace(/\/$/, "");
}

export class Glagol {
  /** @param {{ baseUrl?: string, apiKey?: string | null }} [options] */
  constructor({ baseUrl, apiKey = null } = {}) {
    /** Absolute or empty: where `/v1/...` paths are appended. */
    this.baseUrl = (baseUrl ?? pageBase()).replace(/\/$/, "");
    /** @type {string | null} */
    this.apiKey = apiKey;
    /**
     * The OpenAPI routes, typed: `await g.api.GET("/v1/models")`.
     * @type {import("./vendor/openapi-fetch.js").Client<paths>}
     */
    this.api = createClient({ baseUrl: this.baseUrl });
    this.api.use({
      onRequest: ({ request }) => {
        for (const [name, value] of Object.entries(this.headers())) request.headers.set(name, value);
        return request;
      },
    });
  }

  /** @returns {Record<string, string>} */
  headers() {
    return this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
  }

  /** @param {string} path */
  url(path) {
    return `${this.baseUrl}${path}`;
  }

  /**
   * A JSON request; refusals throw `GlagolError`. A `503` with
   * `Retry-After` (a model still loading) is retried after that long.
   * @param {string} method
   * @param {string} path
   * @param {RequestInit & { retries?: number, onRetry?: (e: GlagolError) => void }} [init]
   * @returns {Promise<any>}
   */
  async request(method, path, init = {}) {
    const { retries = 3, onRetry, ...rest } = init;
    for (let attempt = 0; ; attempt++) {
      const response = await fetch(this.url(path), {
        ...rest,
        method,
        headers: { ...this.headers(), ...Object.fromEntries(new Headers(rest.headers ?? {})) },
      });
      if (response.ok) {
        const type = response.headers.get("content-type") ?? "";
        return type.includes("json") ? response.json() : response.text();
      }
      const error = await GlagolError.from(response);
      if (response.status !== 503 || error.retryAfter === null || attempt >= retries) throw error;
      onRetry?.(error);
      await sleep(error.retryAfter * 1000, rest.signal ?? undefined);
    }
  }

  /**
   * Server-sent events over fetch: `{event, id, data}` with `data` parsed
   * as JSON. A connection that drops mid-stream is reopened with
   * `Last-Event-ID` (three tries); the stream's own end ends the loop.
   * @param {string} path
   * @param {{ signal?: AbortSignal, lastEventId?: string | null }} [options]
   * @returns {AsyncGenerator<ServerEvent>}
   */
  async *events(path, { signal, lastEventId = null } = {}) {
    let failures = 0;
    for (;;) {
      /** @type {Record<string, string>} */
      const headers = { ...this.headers(), accept: "text/event-stream" };
      if (lastEventId) headers["last-event-id"] = lastEventId;
      let response;
      try {
        response = await fetch(this.url(path), { headers, signal });
      } catch (e) {
        if (signal?.aborted || ++failures > 3) throw e;
        await sleep(1000 * failures, signal);
        continue;
      }
      if (!response.ok || !response.body) throw await GlagolError.from(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      /** @type {{ event: string, id: string | null, data: string[] }} */
      let pending = { event: "message", id: null, data: [] };
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += value;
          let cut;
          while ((cut = buffer.search(/\r?\n/)) >= 0) {
            const line = buffer.slice(0, cut);
            buffer = buffer.slice(cut + (buffer[cut] === "\r" ? 2 : 1));
            if (line === "") {
              if (pending.data.length) {
                if (pending.id !== null) lastEventId = pending.id;
                const text = pending.data.join("\n");
                let data;
                try {
                  data = JSON.parse(text);
                } catch {
                  data = text;
                }
                yield { event: pending.event, id: pending.id, data };
              }
              pending = { event: "message", id: null, data: [] };
              continue;
            }
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") pending.event = text;
            else if (field === "data") pending.data.push(text);
            else if (field === "id") pending.id = text;
          }
        }
      } catch (e) {
        if (signal?.aborted || ++failures > 3) throw e;
        await sleep(1000 * failures, signal);
      } finally {
        reader.releaseLock();
      }
    }
  }

  /**
   * Submits a file as a durable job (`POST /v1/jobs`), reporting upload
   * progress. Fields are the form's (`model`, `language`, `task`, …).
   * @param {Blob} file
   * @param {Record<string, string | number | boolean | undefined>} [fields]
   * @param {{ onProgress?: (sent: number, total: number) => void, signal?: AbortSignal,
   *   idempotencyKey?: string, filename?: string }} [options]
   * @returns {Promise<Job>}
   */
  submitJob(file, fields = {}, { onProgress, signal, idempotencyKey, filename } = {}) {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) {
      if (value !== undefined && value !== "") form.append(name, String(value));
    }
    form.append("file", file, filename ?? /** @type {File} */ (file).name ?? "audio");
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.url("/v1/jobs"));
      for (const [name, value] of Object.entries(this.headers())) xhr.setRequestHeader(name, value);
      if (idempotencyKey) xhr.setRequestHeader("idempotency-key", idempotencyKey);
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = async () => {
        const response = new Response(xhr.responseText, {
          status: xhr.status,
          headers: { "content-type": "application/json", "retry-after": xhr.getResponseHeader("retry-after") ?? "" },
        });
        if (xhr.status >= 200 && xhr.status < 300) resolve(await response.json());
        else reject(await GlagolError.from(response));
      };
      xhr.onerror = () => reject(new GlagolError(0, "network_error", "the upload could not reach the server"));
      xhr.onabort = () => reject(new GlagolError(0, "aborted", "the upload was cancelled"));
      signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(form);
    });
  }

  /**
   * A response body as a Blob, fetched with the key (a plain link cannot
   * send it): results for download.
   * @param {string} path
   * @returns {Promise<Blob>}
   */
  async download(path) {
    const response = await fetch(this.url(path), { headers: this.headers() });
    if (!response.ok) throw await GlagolError.from(response);
    return response.blob();
  }

  /**
   * Opens a live session on `/v1/ws`.
   * @param {LiveOptions} [options]
   */
  live(options = {}) {
    return new LiveSession(this, options);
  }
}

/**
 * One `/v1/ws` session. Events: `ready`, `speech_started`, `partial`,
 * `final`, `speech_stopped`, `error` (CustomEvent, `detail` = the server's
 * message) and `close` (`detail` = `{code, reason}`).
 */
export class LiveSession extends EventTarget {
  /**
   * @param {Glagol} client
   * @param {LiveOptions} options
   */
  constructor(client, options) {
    super();
    const query = new URLSearchParams();
    const set = (/** @type {string} */ name, /** @type {unknown} */ value) => {
      if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
    };
    set("sample_rate", options.sampleRate);
    set("model", options.model);
    set("language", options.language);
    set("partials", options.partials);
    set("diarize", options.diarize);
    set("silence_ms", options.silenceMs);
    set("encoding", options.encoding);
    const http = new URL(client.url(`/v1/ws?${query}`), typeof location === "undefined" ? undefined : location.href);
    http.protocol = http.protocol === "https:" ? "wss:" : "ws:";
    const protocols = ["glagol-1"];
    // A key that is not an HTTP token cannot be a subprotocol.
    if (client.apiKey) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(client.apiKey)) {
        throw new GlagolError(0, "key_not_a_token",
          "this API key has characters a browser cannot send over a WebSocket (/, =, spaces); use a key of letters, digits, '-', '_' and '.'");
      }
      protocols.push(`glagol-key.${client.apiKey}`);
    }
    this.socket = new WebSocket(http.href, protocols);
    this.socket.binaryType = "arraybuffer";
    /** @type {LiveReady | null} */
    this.ready = null;
    this.closed = new Promise((resolve) => {
      this.socket.addEventListener("close", (e) => {
        const detail = { code: e.code, reason: e.reason };
        this.dispatchEvent(new CustomEvent("close", { detail }));
        resolve(detail);
      });
    });
    this.socket.addEventListener("message", (e) => {
      if (typeof e.data !== "string") return;
      /** @type {LiveMessage} */
      const message = JSON.parse(e.data);
      if (message.type === "ready") this.ready = message;
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    });
  }

  /** Bytes queued in the browser, not yet sent: grows when the link is slow. */
  get buffered() {
    return this.socket.bufferedAmount;
  }

  /** @param {Int16Array | Float32Array | ArrayBuffer} samples */
  send(samples) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(samples);
  }

  /** Ends the current utterance now; the session goes on. */
  finalize() {
    this.#text({ type: "finalize" });
  }

  /**
   * Asks for the remaining finals and waits for the server to close.
   * @returns {Promise<{ code: number, reason: string }>}
   */
  stop() {
    this.#text({ type: "stop" });
    return this.closed;
  }

  close() {
    this.socket.close(1000);
  }

  /** @param {object} message */
  #text(message) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }
}
