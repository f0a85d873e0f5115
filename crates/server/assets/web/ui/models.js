// @ts-check
// Models: every installed model with its state, kept live by
// `/v1/models/events`; load and unload buttons.

import { byId, h, size } from "./dom.js";

/** @typedef {import("./app.js").App} App */
/** @typedef {import("./glagol.js").ModelInfo} ModelInfo */

const STATES = {
  unloaded: "Unloaded",
  loading: "Loading…",
  waiting_for_memory: "Waiting for memory",
  ready: "Ready",
  failed: "Failed",
};

export class ModelsPanel {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.list = byId("models-list");
    /** @type {Record<string, string>} the last event's message per model */
    this.messages = {};
    app.modelListeners.push((models) => this.render(models));
    this.watch();
    this.catalog();
    document.addEventListener("glagol:key", () => {
      this.watch();
      this.catalog();
    });
  }

  /** The catalog's models that are not installed, with how to install them. */
  async catalog() {
    const { data } = await this.app.client.api.GET("/v1/models/catalog");
    if (!data) return;
    const missing = data.data.filter((m) => !m.installed);
    byId("catalog-summary").textContent = `${missing.length} more models to download`;
    byId("catalog-list").replaceChildren(...missing.map((m) =>
      h("li", { class: "model", "data-catalog": m.id },
        h("span", { class: "name" }, m.id),
        h("span", { class: "chip" }, "Not installed"),
        h("span", { class: "meta" }, `${m.description}${m.size_bytes ? ` · ${size(m.size_bytes)}` : ""}`),
        h("code", {}, `glagol models pull ${m.id}`))));
  }

  /** Follows lifecycle events for as long as the page is open. */
  async watch() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    while (!controller.signal.aborted) {
      try {
        for await (const ev of this.app.client.events("/v1/models/events", { signal: controller.signal })) {
          if (ev.data?.model) this.messages[ev.data.model] = ev.data.message ?? "";
          await this.app.refreshModels();
        }
      } catch (e) {
        if (controller.signal.aborted) return;
        // A refused key is shown by the first request that needs it.
      }
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }

  /** @param {ModelInfo[]} models */
  render(models) {
    if (!models.length) {
      this.list.replaceChildren(h("li", { class: "hint" }, "No models installed: run `glagol models pull whisper-base` on the server."));
      return;
    }
    this.list.replaceChildren(...models.map((m) => {
      const busy = m.state === "loading" || m.state === "waiting_for_memory";
      const loaded = m.state === "ready";
      const action = loaded
        ? h("button", { type: "button", class: "ghost", onclick: () => this.act(m.id, "unload"), "aria-label": `Unload ${m.id}` }, "Unload")
        : h("button", { type: "button", onclick: () => this.act(m.id, "load"), disabled: busy, "aria-label": `Load ${m.id}` }, busy ? "Loading…" : "Load");
      const languages = m.languages.includes("*") ? "any language" : m.languages.join(", ");
      const reason = m.error ?? (m.state === "failed" || m.state === "waiting_for_memory" ? this.messages[m.id] : "");
      return h("li", { class: "model", "data-model": m.id },
        h("span", { class: "name" }, m.id),
        h("span", { class: `chip ${m.state}`, "data-state": m.state }, STATES[m.state] ?? m.state),
        h("span", { class: "meta" }, `${m.engine} · ${languages} · ${size(m.size_bytes)}${m.resident_bytes ? ` · ${size(m.resident_bytes)} in memory` : ""}`),
        reason ? h("span", { class: "meta" }, reason) : null,
        action);
    }));
  }

  /** @param {string} id @param {"load" | "unload"} what */
  async act(id, what) {
    try {
      await this.app.client.request("POST", `/v1/models/${encodeURIComponent(id)}/${what}`);
      await this.app.refreshModels();
    } catch (e) {
      this.app.report(e);
    }
  }
}
