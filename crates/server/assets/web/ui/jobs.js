// @ts-check
// Jobs: the jobs this key may see (its own, or all with an admin key),
// refreshed every 2 s while the tab is open and a job is still going;
// open a result here, cancel, purge.

import { byId, h } from "./dom.js";

/** @typedef {import("./app.js").App} App */
/** @typedef {import("./glagol.js").Job} Job */

const ACTIVE = new Set(["queued", "running"]);

export class JobsPanel {
  /** @param {App} app */
  constructor(app) {
    this.app = app;
    this.body = /** @type {HTMLElement} */ (byId("jobs-table").querySelector("tbody"));
    this.visible = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    byId("jobs-refresh").addEventListener("click", () => this.refresh());
    document.addEventListener("glagol:tab", (e) => {
      this.visible = /** @type {CustomEvent} */ (e).detail === "jobs";
      if (this.visible) this.refresh();
    });
  }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const list = await this.app.client.request("GET", "/v1/jobs?limit=50");
      /** @type {Job[]} */
      const jobs = list.data;
      this.render(jobs);
      if (this.visible && jobs.some((j) => ACTIVE.has(j.status))) {
        this.timer = setTimeout(() => this.refresh(), 2000);
      }
    } catch (e) {
      this.app.report(e);
    }
  }

  /** @param {Job[]} jobs */
  render(jobs) {
    if (!jobs.length) {
      this.body.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "hint" }, "No jobs yet.")));
      return;
    }
    // Owners matter only in an admin's list of several keys' jobs.
    const owners = new Set(jobs.map((j) => j.owner ?? ""));
    this.body.replaceChildren(...jobs.map((job) => {
      const name = job.file?.name ?? job.id;
      const button = (/** @type {string} */ label, /** @type {() => void} */ onclick, cls = "ghost") =>
        h("button", { type: "button", class: cls, onclick, "aria-label": `${label} ${name}` }, label);
      const actions = [];
      if (job.status === "done") actions.push(button("Open", () => document.dispatchEvent(new CustomEvent("glagol:open-job", { detail: { id: job.id, name } }))));
      if (ACTIVE.has(job.status)) actions.push(button("Cancel", () => this.act("DELETE", job.id), "danger"));
      else actions.push(button("Purge", () => confirm(`Delete ${name}, its audio and transcript from the server?`) && this.act("DELETE", job.id, true), "danger"));
      const percent = Math.round(job.progress?.percent ?? (job.status === "done" ? 100 : 0));
      return h("tr", { "data-job": job.id },
        h("td", {}, name, owners.size > 1 && job.owner ? h("div", { class: "hint" }, job.owner) : null),
        h("td", {}, job.status + (job.error ? `: ${job.error.code}` : "")),
        h("td", { class: "percent" }, h("progress", { max: 100, value: percent, "aria-label": `Progress of ${name}` }), ` ${percent}%`),
        h("td", {}, new Date(job.created_at * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" })),
        h("td", {}, h("div", { class: "actions" }, ...actions)));
    }));
  }

  /** @param {string} method @param {string} id @param {boolean} [purge] */
  async act(method, id, purge = false) {
    try {
      await this.app.client.request(method, `/v1/jobs/${encodeURIComponent(id)}${purge ? "?purge=true" : ""}`);
    } catch (e) {
      this.app.report(e);
    }
    this.refresh();
  }
}
