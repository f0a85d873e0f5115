// @ts-check
// Files: each dropped or chosen file becomes a durable job. The card shows
// the upload's bytes, then the job's progress and its segments as they are
// decoded; the job ids are kept in this browser, so a reload re-attaches
// (the job's event log replays). The player plays the local file; times and
// words seek it. Downloads are the server's own renderings.

import { GlagolError } from "./glagol.js";
import { byId, copyText, h, saveBlob, stem } from "./dom.js";
import { TranscriptView } from "./transcript.js";

/** @typedef {import("./app.js").App} App */

const STORE = "glagol.jobs";
const KEEP = 30;

/** @returns {{ id: string, name: string }[]} */
function stored() {
  try {
    return JSON.parse(localStorage.getItem(STORE) ?? "[]");
  } catch {
    return [];
  }
}

/** @param {{ id: string, name: string }[]} jobs */
function store(jobs) {
  localStorage.setItem(STORE, JSON.stringify(jobs.slice(0, KEEP)));
}

export class FilesPanel {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.list = byId("file-list");
    const input = /** @type {HTMLInputElement} */ (byId("file-input"));
    const drop = byId("drop");
    input.addEventListener("change", () => {
      for (const file of input.files ?? []) this.submit(file);
      input.value = "";
    });
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      for (const file of e.dataTransfer?.files ?? []) this.submit(file);
    });
    // Newest first on screen, as they were.
    for (const job of stored().reverse()) this.attach(job.id, job.name);
    document.addEventListener("glagol:open-job", (e) => {
      const { id, name } = /** @type {CustomEvent} */ (e).detail;
      this.attach(id, name, true);
    });
  }

  /** The form fields of the chosen settings. */
  fields() {
    const value = (/** @type {string} */ id) => /** @type {HTMLSelectElement} */ (byId(id)).value;
    const checked = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (byId(id)).checked;
    return {
      model: value("file-model"),
      language: value("file-language"),
      task: value("file-task"),
      word_timestamps: checked("file-words"),
      vad: checked("file-vad"),
    };
  }

  /** @param {File} file */
  async submit(file) {
    const card = new FileCard(this, file.name, URL.createObjectURL(file));
    this.list.prepend(card.el);
    card.status("Uploading…");
    try {
      const job = await this.app.client.submitJob(file, this.fields(), {
        onProgress: (sent, total) => card.uploading(sent, total),
      });
      store([{ id: job.id, name: file.name }, ...stored().filter((j) => j.id !== job.id)]);
      card.follow(job.id);
    } catch (e) {
      card.status(e instanceof GlagolError ? `Not accepted: ${e.message} (${e.code})` : String(e), "failed");
      this.app.report(e);
    }
  }

  /** Shows a job submitted earlier (by this browser, or opened from Jobs). */
  attach(/** @type {string} */ id, /** @type {string} */ name, /** @type {boolean} */ reveal = false) {
    let el = this.list.querySelector(`[data-job="${CSS.escape(id)}"]`);
    if (!el) {
      const card = new FileCard(this, name, null);
      this.list.prepend(card.el);
      card.follow(id);
      el = card.el;
    }
    if (reveal) {
      if (!stored().some((j) => j.id === id)) store([{ id, name }, ...stored()]);
      /** @type {HTMLElement | null} */ (document.querySelector('[data-tab="files"]'))?.click();
      el.scrollIntoView();
    }
  }

  /** Forgets a job in this browser (the server keeps it). @param {string} id */
  forget(id) {
    store(stored().filter((j) => j.id !== id));
  }
}

class FileCard {
  /**
   * @param {FilesPanel} panel
   * @param {string} name
   * @param {string | null} audioUrl the local file, when this browser has it
   */
  constructor(panel, name, audioUrl) {
    this.panel = panel;
    this.name = name;
    /** @type {string | null} */
    this.id = null;
    this.attempt = 0;
    this.controller = new AbortController();
    this.statusEl = h("p", { class: "status", role: "status" });
    this.bar = /** @type {HTMLProgressElement} */ (h("progress", { max: 100, value: 0, "aria-label": `Progress of ${name}` }));
    this.audio = audioUrl
      ? /** @type {HTMLAudioElement} */ (h("audio", { controls: true, preload: "metadata", src: audioUrl, "aria-label": `Audio of ${name}` }))
      : null;
    const body = h("div", { class: "transcript", role: "region", "aria-label": `Transcript of ${name}` });
    this.view = new TranscriptView(body, this.audio ? (t) => this.seek(t) : undefined);
    this.audio?.addEventListener("timeupdate", () => this.view.follow(/** @type {HTMLAudioElement} */ (this.audio).currentTime));
    const button = (/** @type {string} */ label, /** @type {() => void} */ onclick, cls = "ghost") =>
      /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: cls, onclick }, label));
    this.downloads = ["txt", "srt", "vtt", "json"].map((format) =>
      button(format, () => this.download(format)));
    this.copy = button("Copy", () => this.copyText());
    this.cancelButton = button("Cancel", () => this.cancel(), "danger");
    for (const b of [...this.downloads, this.copy]) b.disabled = true;
    this.downloads.forEach((b, i) => b.setAttribute("aria-label", `Download ${["txt", "srt", "vtt", "json"][i]} of ${name}`));
    this.el = h("article", { class: "file-card", "aria-label": name },
      h("div", { class: "row spread" }, h("h3", {}, name),
        button("Remove", () => this.remove())),
      this.statusEl, this.bar, this.audio ?? h("p", { class: "hint" }, "The audio stays in the browser that uploaded it."),
      body,
      h("div", { class: "actions" }, h("span", { class: "status" }, "Download"), ...this.downloads, this.copy, this.cancelButton));
  }

  /** @param {string} text @param {"" | "done" | "failed"} [kind] */
  status(text, kind = "") {
    this.statusEl.textContent = text;
    this.statusEl.className = `status ${kind}`;
  }

  uploading(/** @type {number} */ sent, /** @type {number} */ total) {
    const percent = total ? Math.round((sent / total) * 100) : 0;
    this.bar.value = percent;
    this.status(`Uploading ${percent}%`);
  }

  /** @param {number} seconds */
  seek(seconds) {
    if (!this.audio) return;
    this.audio.currentTime = seconds;
    this.audio.play().catch(() => {});
  }

  /** Follows the job's events until it ends (they replay from the start). @param {string} id */
  async follow(id) {
    this.id = id;
    this.el.dataset.job = id;
    this.bar.value = 0;
    this.status("Waiting for the server…");
    try {
      for await (const ev of this.panel.app.client.events(`/v1/jobs/${encodeURIComponent(id)}/events`, { signal: this.controller.signal })) {
        const data = ev.data;
        if (data.attempt && data.attempt !== this.attempt) {
          // A retried job decodes again from the start.
          this.attempt = data.attempt;
          this.view.clear();
        }
        if (ev.event === "queued") this.status("Queued");
        else if (ev.event === "started") this.status("Recognising…");
        else if (ev.event === "progress") {
          this.bar.value = data.percent ?? 0;
          this.status(`Recognising ${Math.round(data.percent ?? 0)}%`);
        } else if (ev.event === "segment") this.view.add(data);
        else if (ev.event === "done") this.finish(data);
        else if (ev.event === "failed") this.end(`Failed: ${data.error?.message ?? "unknown error"} (${data.error?.code ?? "failed"})`, "failed");
        else if (ev.event === "cancelled") this.end("Cancelled", "failed");
      }
    } catch (e) {
      if (this.controller.signal.aborted) return;
      if (e instanceof GlagolError && e.code === "job_not_found") {
        this.end("This job is no longer on the server", "failed");
        this.panel.forget(id);
        return;
      }
      this.status(`Lost the job's progress: ${e instanceof Error ? e.message : e}`, "failed");
      this.panel.app.report(e);
    }
  }

  /** @param {any} job */
  finish(job) {
    this.bar.value = 100;
    const seconds = job.timings?.running_seconds;
    this.end(`Done${seconds ? ` in ${seconds.toFixed(1)} s` : ""}`, "done");
    for (const b of [...this.downloads, this.copy]) b.disabled = false;
  }

  /** @param {string} text @param {"" | "done" | "failed"} kind */
  end(text, kind) {
    this.status(text, kind);
    this.cancelButton.hidden = true;
  }

  /** @param {string} format */
  async download(format) {
    if (!this.id) return;
    const server = format === "json" ? "verbose_json" : format;
    try {
      const blob = await this.panel.app.client.download(`/v1/jobs/${encodeURIComponent(this.id)}/result?format=${server}`);
      saveBlob(blob, `${stem(this.name)}.${format}`);
    } catch (e) {
      this.panel.app.report(e);
    }
  }

  async copyText() {
    if (!this.id) return;
    try {
      const blob = await this.panel.app.client.download(`/v1/jobs/${encodeURIComponent(this.id)}/result?format=txt`);
      await copyText(await blob.text(), this.copy);
    } catch (e) {
      this.panel.app.report(e);
    }
  }

  async cancel() {
    if (!this.id) return;
    try {
      await this.panel.app.client.request("DELETE", `/v1/jobs/${encodeURIComponent(this.id)}`);
      this.status("Cancelling…");
    } catch (e) {
      this.panel.app.report(e);
    }
  }

  remove() {
    this.controller.abort();
    if (this.id) this.panel.forget(this.id);
    if (this.audio) URL.revokeObjectURL(this.audio.src);
    this.el.remove();
  }
}
