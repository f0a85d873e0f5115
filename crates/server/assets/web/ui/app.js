// @ts-check
// The page's entry: the client with the key, the tabs, the error banner and
// the model and language pickers the panels share.

import { Glagol, GlagolError } from "./glagol.js";
import { byId, h } from "./dom.js";
import { FilesPanel } from "./files.js";
import { LivePanel } from "./live.js";
import { ModelsPanel } from "./models.js";
import { JobsPanel } from "./jobs.js";

/** @typedef {import("./glagol.js").ModelInfo} ModelInfo */

const KEY = "glagol.apiKey";
const LANGUAGES = [
  ["", "Detect"], ["en", "English"], ["ru", "Russian"], ["de", "German"], ["fr", "French"],
  ["es", "Spanish"], ["it", "Italian"], ["pt", "Portuguese"], ["uk", "Ukrainian"], ["pl", "Polish"],
  ["nl", "Dutch"], ["tr", "Turkish"], ["ar", "Arabic"], ["hi", "Hindi"], ["zh", "Chinese"],
  ["ja", "Japanese"], ["ko", "Korean"],
];

/** What every panel gets: the client, the banner, the installed models. */
export class App {
  constructor() {
    this.client = new Glagol({ apiKey: sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY) });
    /** @type {ModelInfo[]} */
    this.models = [];
    /** @type {((models: ModelInfo[]) => void)[]} */
    this.modelListeners = [];
    this.banner = byId("banner");
  }

  /**
   * Shows what went wrong in words; a missing or wrong key opens the key
   * field, a model still loading says it is being retried.
   * @param {unknown} error
   */
  report(error) {
    if (error instanceof GlagolError) {
      if (error.code === "missing_api_key" || error.code === "invalid_api_key") {
        this.openKey(true);
        this.show(`This server needs a valid API key (${error.code}): ${error.message}`);
      } else if (error.code === "model_not_ready") {
        this.show(`The model is loading; try again in ${error.retryAfter ?? 1} s. (${error.message})`, true);
      } else {
        this.show(`${error.message} (${error.code}${error.status ? `, HTTP ${error.status}` : ""})`);
      }
    } else {
      this.show(error instanceof Error ? error.message : String(error));
    }
  }

  /** @param {string} text @param {boolean} [info] not an error */
  show(text, info = false) {
    this.banner.replaceChildren(
      h("span", {}, text), " ",
      h("button", { type: "button", class: "ghost", onclick: () => this.clear() }, "Dismiss"),
    );
    this.banner.classList.toggle("info", info);
    this.banner.hidden = false;
  }

  clear() {
    this.banner.hidden = true;
  }

  /** @param {boolean} open */
  openKey(open) {
    byId("key-panel").hidden = !open;
    byId("key-toggle").setAttribute("aria-expanded", String(open));
    if (open) byId("api-key").focus();
  }

  /** Reloads the installed models and tells the pickers and panels. */
  async refreshModels() {
    const { data, error, response } = await this.client.api.GET("/v1/models");
    if (error) throw await GlagolError.from(response, error);
    this.models = data.data;
    for (const listener of this.modelListeners) listener(this.models);
  }
}

/** Fills a model picker, keeping the choice across reloads. @param {HTMLSelectElement} select @param {ModelInfo[]} models */
function fillModels(select, models) {
  const chosen = select.value || localStorage.getItem(`glagol.${select.id}`) || "";
  select.replaceChildren(
    h("option", { value: "" }, "Server default"),
    ...models.map((m) => h("option", { value: m.id }, `${m.id}${m.state === "ready" ? "" : ` (${m.state.replaceAll("_", " ")})`}`)),
  );
  select.value = models.some((m) => m.id === chosen) ? chosen : "";
}

function setUpKey(/** @type {App} */ app) {
  const input = /** @type {HTMLInputElement} */ (byId("api-key"));
  const remember = /** @type {HTMLInputElement} */ (byId("key-remember"));
  input.value = app.client.apiKey ?? "";
  remember.checked = localStorage.getItem(KEY) !== null;
  byId("key-toggle").addEventListener("click", () => app.openKey(byId("key-panel").hidden));
  byId("key-show").addEventListener("click", (e) => {
    const showing = input.type === "text";
    input.type = showing ? "password" : "text";
    /** @type {HTMLElement} */ (e.currentTarget).setAttribute("aria-pressed", String(!showing));
    /** @type {HTMLElement} */ (e.currentTarget).textContent = showing ? "Show" : "Hide";
  });
  byId("key-panel").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = input.value.trim();
    app.client.apiKey = key || null;
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    if (key) (remember.checked ? localStorage : sessionStorage).setItem(KEY, key);
    app.openKey(false);
    app.clear();
    document.dispatchEvent(new Event("glagol:key"));
  });
  byId("key-forget").addEventListener("click", () => {
    input.value = "";
    remember.checked = false;
    byId("key-panel").dispatchEvent(new Event("submit", { cancelable: true }));
  });
}

function setUpTabs() {
  const tabs = [...document.querySelectorAll(".tab")].map((t) => /** @type {HTMLElement} */ (t));
  const select = (/** @type {string} */ name) => {
    const known = tabs.some((t) => t.dataset.tab === name) ? name : "files";
    for (const tab of tabs) {
      const on = tab.dataset.tab === known;
      if (on) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
      byId(/** @type {string} */ (tab.dataset.tab)).hidden = !on;
    }
    document.dispatchEvent(new CustomEvent("glagol:tab", { detail: known }));
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => {
      history.replaceState(null, "", `#${tab.dataset.tab}`);
      select(/** @type {string} */ (tab.dataset.tab));
    });
  }
  addEventListener("hashchange", () => select(location.hash.slice(1)));
  select(location.hash.slice(1));
}

async function main() {
  const app = new App();
  setUpKey(app);
  for (const select of document.querySelectorAll(".language-select")) {
    const picker = /** @type {HTMLSelectElement} */ (select);
    picker.replaceChildren(...LANGUAGES.map(([code, name]) => h("option", { value: code }, name)));
    picker.value = localStorage.getItem(`glagol.${picker.id}`) ?? "";
  }
  for (const select of document.querySelectorAll(".model-select, .language-select, #file-task")) {
    const picker = /** @type {HTMLSelectElement} */ (select);
    picker.addEventListener("change", () => localStorage.setItem(`glagol.${picker.id}`, picker.value));
  }
  const task = /** @type {HTMLSelectElement} */ (byId("file-task"));
  task.value = localStorage.getItem("glagol.file-task") ?? "transcribe";
  app.modelListeners.push((models) => {
    for (const select of document.querySelectorAll(".model-select")) {
      fillModels(/** @type {HTMLSelectElement} */ (select), models);
    }
  });
  new FilesPanel(app);
  new LivePanel(app);
  new JobsPanel(app);
  new ModelsPanel(app);
  setUpTabs();
  app.client.request("GET", "/health").then(
    (health) => (byId("server-version").textContent = ` · glagol ${health.version}`),
    () => {},
  );
  const load = () => app.refreshModels().catch((e) => app.report(e));
  document.addEventListener("glagol:key", load);
  await load();
}

main();
