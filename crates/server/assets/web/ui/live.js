// @ts-check
// Live: the microphone through an AudioWorklet at the context's own rate,
// 20 ms Int16 frames to `/v1/ws` (held until `ready`, at most 5 s), partials
// shown grey in one reserved line and replaced by finals, a level meter, the
// lag the server measures, a wake lock while live, and the session's text
// and audio to download.

import { GlagolError } from "./glagol.js";
import { byId, copyText, saveBlob } from "./dom.js";
import { TranscriptView } from "./transcript.js";

/** @typedef {import("./app.js").App} App */
/** @typedef {import("./glagol.js").LiveResult} LiveResult */

/** Audio kept for the WAV download, at most (seconds). */
const KEEP_SECONDS = 30 * 60;
/** Audio held while the connection opens, at most (seconds). */
const HOLD_SECONDS = 5;

export class LivePanel {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.button = /** @type {HTMLButtonElement} */ (byId("live-start"));
    this.stateEl = byId("live-state");
    this.lagEl = byId("live-lag");
    this.levelBar = byId("live-level-bar");
    this.meter = /** @type {HTMLMeterElement} */ (byId("live-level"));
    this.partial = byId("live-partial");
    this.view = new TranscriptView(byId("live-finals"));
    /** @type {Int16Array<ArrayBuffer>[]} */
    this.recorded = [];
    this.rate = 0;
    /** @type {null | (() => Promise<void>)} */
    this.stopping = null;
    this.button.addEventListener("click", () => (this.stopping ? this.stop() : this.start()));
    byId("live-txt").addEventListener("click", () => saveBlob(new Blob([this.view.text() + "\n"], { type: "text/plain" }), "live.txt"));
    byId("live-srt").addEventListener("click", () => saveBlob(new Blob([this.view.srt()], { type: "application/x-subrip" }), "live.srt"));
    byId("live-wav").addEventListener("click", () => saveBlob(wav(this.recorded, this.rate), "live.wav"));
    byId("live-copy").addEventListener("click", (e) => copyText(this.view.text(), /** @type {HTMLElement} */ (e.currentTarget)));
    byId("live-clear").addEventListener("click", () => {
      this.view.clear();
      this.recorded = [];
      this.enableDownloads();
    });
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      byId("live-insecure").hidden = false;
      byId("live-origin").textContent = location.origin;
      byId("live-host").textContent = location.hostname;
      for (const el of document.querySelectorAll(".live-port")) el.textContent = location.port || "80";
      this.button.disabled = true;
      this.state("The microphone is unavailable on this address (see above)");
    }
  }

  /** @param {string} text */
  state(text) {
    this.stateEl.textContent = text;
  }

  enableDownloads() {
    const hasText = this.view.rows.length > 0;
    for (const id of ["live-txt", "live-srt", "live-copy", "live-clear"]) {
      /** @type {HTMLButtonElement} */ (byId(id)).disabled = !hasText && !this.recorded.length;
    }
    /** @type {HTMLButtonElement} */ (byId("live-wav")).disabled = !this.recorded.length;
  }

  async start() {
    const raw = /** @type {HTMLInputElement} */ (byId("live-raw")).checked;
    const model = /** @type {HTMLSelectElement} */ (byId("live-model")).value;
    const language = /** @type {HTMLSelectElement} */ (byId("live-language")).value;
    this.button.disabled = true;
    this.state("Starting…");
    this.app.clear();
    // Created in the click, before any await: Safari's gesture rules.
    const context = new AudioContext();
    /** @type {MediaStream | null} */
    let stream = null;
    /** @type {WakeLockSentinel | null} */
    let wakeLock = null;
    try {
      await context.resume();
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: !raw, noiseSuppression: !raw, autoGainControl: !raw },
      });
      await context.audioWorklet.addModule("ui/capture-worklet.js");
      const node = new AudioWorkletNode(context, "glagol-capture", { processorOptions: { chunkMs: 20 } });
      // Chromium runs a worklet only when something pulls it: a muted path
      // to the speakers (its output is silence anyway).
      const mute = context.createGain();
      mute.gain.value = 0;
      node.connect(mute).connect(context.destination);
      const rate = await new Promise((resolve) => {
        node.port.onmessage = (e) => resolve(e.data.rate);
      });
      this.rate = rate;
      this.recorded = [];
      const session = this.app.client.live({ sampleRate: rate, model: model || undefined, language: language || undefined });
      /** @type {ArrayBuffer[]} */
      let held = [];
      let kept = 0;
      node.port.onmessage = (e) => {
        const { samples, peak } = e.data;
        this.level(peak);
        if (kept < KEEP_SECONDS * rate) {
          this.recorded.push(new Int16Array(samples.slice(0)));
          kept += samples.byteLength / 2;
        }
        if (session.ready) session.send(samples);
        else if (held.length * samples.byteLength < HOLD_SECONDS * rate * 2) held.push(samples);
        if (session.buffered > rate * 2 * 2) this.state("Live — the network is slow, audio is queueing");
      };
      session.addEventListener("ready", () => {
        for (const samples of held) session.send(samples);
        held = [];
        this.state("Live");
      });
      session.addEventListener("partial", (e) => this.showPartial(/** @type {CustomEvent} */ (e).detail));
      session.addEventListener("final", (e) => this.showFinal(/** @type {CustomEvent} */ (e).detail));
      session.addEventListener("error", (e) => {
        const m = /** @type {CustomEvent} */ (e).detail;
        if (m.code === "model_not_ready") {
          const seconds = Math.ceil((m.retry_after_ms ?? 1000) / 1000);
          this.app.show(`The model is still loading: press Start again in ${seconds} s. (${m.message})`, true);
        } else {
          this.app.report(new GlagolError(0, m.code, m.message, m.retry_after_ms ? m.retry_after_ms / 1000 : null));
        }
      });
      context.createMediaStreamSource(stream).connect(node);
      wakeLock = await navigator.wakeLock?.request("screen").catch(() => null) ?? null;
      const release = async () => {
        node.port.onmessage = null;
        stream?.getTracks().forEach((t) => t.stop());
        await context.close().catch(() => {});
        await wakeLock?.release().catch(() => {});
        this.level(0);
        this.partial.textContent = "";
        this.stopping = null;
        this.button.textContent = "Start";
        this.button.disabled = false;
        this.enableDownloads();
      };
      session.closed.then(({ code, reason }) => {
        this.state(code === 1000 ? "Stopped" : `Closed by the server (${code}${reason ? `: ${reason}` : ""})`);
        release();
      });
      this.stopping = async () => {
        this.button.disabled = true;
        this.state("Finishing…");
        node.port.onmessage = null;
        stream?.getTracks().forEach((t) => t.stop());
        const timeout = new Promise((resolve) => setTimeout(resolve, 15_000));
        await Promise.race([session.stop(), timeout]);
        session.close();
      };
      this.button.textContent = "Stop";
      this.button.disabled = false;
      this.state("Connecting…");
    } catch (e) {
      stream?.getTracks().forEach((t) => t.stop());
      await context.close().catch(() => {});
      this.button.disabled = false;
      this.state("Stopped");
      const denied = e instanceof DOMException && e.name === "NotAllowedError";
      this.app.report(denied ? new Error("The browser did not allow the microphone. Allow it for this site and press Start again.") : e);
    }
  }

  async stop() {
    await this.stopping?.();
  }

  /** @param {number} peak 0–1 */
  level(peak) {
    this.meter.value = peak;
    this.levelBar.style.width = `${Math.min(100, Math.round(Math.sqrt(peak) * 100))}%`;
  }

  /** @param {LiveResult} result */
  showPartial(result) {
    const words = result.text.trim().split(/\s+/);
    const stable = result.stable_words ?? 0;
    const strong = document.createElement("span");
    strong.className = "stable";
    strong.textContent = words.slice(0, stable).join(" ");
    this.partial.replaceChildren(strong, (stable ? " " : "") + words.slice(stable).join(" "));
    this.lag(result.processing_ms);
  }

  /** @param {LiveResult} result */
  showFinal(result) {
    this.partial.textContent = "";
    if (result.text.trim()) {
      this.view.add({ start: result.start, end: result.end, text: result.text, speaker: result.speaker });
      this.view.root.lastElementChild?.classList.add("final");
      this.view.root.lastElementChild?.scrollIntoView({ block: "nearest" });
    }
    this.lag(result.processing_ms);
    this.enableDownloads();
  }

  /** @param {number} ms */
  lag(ms) {
    this.lagEl.textContent = `lag ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`}`;
  }
}

/**
 * A 16-bit mono WAV of the captured chunks.
 * @param {Int16Array<ArrayBuffer>[]} chunks
 * @param {number} rate
 */
function wav(chunks, rate) {
  const samples = chunks.reduce((n, c) => n + c.length, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (/** @type {number} */ at, /** @type {string} */ s) => [...s].forEach((ch, i) => header.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF");
  header.setUint32(4, 36 + samples * 2, true);
  text(8, "WAVEfmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true);
  header.setUint16(22, 1, true);
  header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, "data");
  header.setUint32(40, samples * 2, true);
  return new Blob([header, ...chunks], { type: "audio/wav" });
}
