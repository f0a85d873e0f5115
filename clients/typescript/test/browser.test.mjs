// The web app in Debian's Chromium, headless, against a running server
// (crates/cli/tests/web_app.rs starts one with a key and passes):
//   GLAGOL_URL, GLAGOL_KEY, GLAGOL_JFK (a WAV), GLAGOL_LIVE_WAV (a padded
//   clip for the fake microphone) and GLAGOL_LIVE_TEXT (its words),
//   ARTIFACTS_DIR (screenshots), CHROMIUM (the browser).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const BASE = process.env.GLAGOL_URL ?? "http://127.0.0.1:8765/";
const KEY = process.env.GLAGOL_KEY ?? "";
const ORIGIN = new URL(BASE).origin;
const ARTIFACTS = process.env.ARTIFACTS_DIR ?? "browser-artifacts";
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
fs.mkdirSync(ARTIFACTS, { recursive: true });

/** Every URL any page asked for, to prove nothing left the server. */
const requested = [];
const browsers = [];
/** Jobs the first test made: later pages show them, as a returning user's would. */
let madeJobs = [];

async function launch(args = []) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--disable-gpu", "--disable-audio-output", "--autoplay-policy=no-user-gesture-required", ...args],
  });
  if (!browsers.length) console.log(`chromium ${browser.version()}`);
  browsers.push(browser);
  return browser;
}

after(async () => {
  for (const b of browsers) await b.close();
  const foreign = requested.filter((u) => !u.startsWith(ORIGIN) && !/^(blob|data):/.test(u)
    && !u.startsWith(ORIGIN.replace(/^http/, "ws")));
  assert.deepEqual(foreign, [], "requests to another origin");
  assert.ok(requested.length > 10, `only ${requested.length} requests were seen`);
});

async function open(browser, { key = KEY, colorScheme = "light", viewport = { width: 1280, height: 860 }, bypassCSP = false, url = BASE } = {}) {
  const context = await browser.newContext({ colorScheme, viewport, permissions: ["microphone"], acceptDownloads: true, bypassCSP });
  if (key) await context.addInitScript((k) => sessionStorage.setItem("glagol.apiKey", k), key);
  await context.addInitScript((jobs) => {
    if (!localStorage.getItem("glagol.jobs")) localStorage.setItem("glagol.jobs", JSON.stringify(jobs));
  }, madeJobs);
  const page = await context.newPage();
  const errors = [];
  const ours = (u) => requested.push(url === BASE ? u : u.replace(new URL(url).origin, ORIGIN));
  page.on("request", (r) => ours(r.url()));
  page.on("websocket", (ws) => ours(ws.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && errors.push(m.text()));
  await page.goto(url);
  return { context, page, errors };
}

async function api(pathAndQuery, init = {}) {
  const response = await fetch(new URL(pathAndQuery.replace(/^\//, ""), BASE), {
    ...init, headers: { authorization: `Bearer ${KEY}`, ...(init.headers ?? {}) },
  });
  assert.ok(response.ok, `${pathAndQuery}: ${response.status}`);
  return response;
}

/** Words compared by their first five letters: endings vary in recognition. */
const words = (s) => s.toLowerCase().replaceAll("ё", "е").replace(/[^\p{L}\p{N}\s]/gu, " ").split(/\s+/).filter(Boolean).map((w) => w.slice(0, 5));

test("a file becomes a job: progress, segments as they come, seek, highlight, srt equals the server's", async () => {
  const browser = await launch();
  const { page, errors } = await open(browser);
  // Timed in the page: from the file chosen to its first segment in the DOM.
  await page.evaluate(() => {
    const list = document.getElementById("file-list");
    window.timing = {};
    document.getElementById("file-input").addEventListener("change", () => (window.timing.chosen = performance.now()), true);
    new MutationObserver(() => {
      if (!window.timing.first && list.querySelector(".segment")) window.timing.first = performance.now();
    }).observe(list, { childList: true, subtree: true });
  });
  await page.setInputFiles("#file-input", process.env.GLAGOL_JFK);
  const card = page.locator(".file-card").first();
  await card.locator(".segment").first().waitFor({ timeout: 60_000 });
  const firstOnScreen = await page.evaluate(() => (window.timing.first - window.timing.chosen) / 1000);
  await card.locator(".status.done").waitFor({ timeout: 60_000 });
  const text = await card.locator(".transcript").innerText();
  assert.match(text.toLowerCase(), /ask not what your country can do for you/);
  const id = await card.getAttribute("data-job");
  const job = await (await api(`/v1/jobs/${id}`)).json();
  // The server's own time for the same audio and settings, without a page or a job.
  const audio = fs.readFileSync(process.env.GLAGOL_JFK);
  const direct = Date.now();
  await api("/v1/transcribe?word_timestamps=true&vad=true", { method: "POST", body: audio });
  const recognition = (Date.now() - direct) / 1000;
  const server = job.timings.queued_seconds + job.timings.running_seconds;
  console.log(`first segment on screen ${firstOnScreen.toFixed(2)} s after choosing the file; the job took ` +
    `${server.toFixed(2)} s from submission to done (page overhead at most ${(firstOnScreen - server).toFixed(2)} s); ` +
    `the same audio through /v1/transcribe afterwards: ${recognition.toFixed(2)} s`);

  // A word seeks the player, and the segment playing is highlighted.
  const word = card.locator(".word", { hasText: "country" }).first();
  const start = Number(await word.getAttribute("data-start"));
  assert.ok(start > 3, `"country" starts at ${start}`);
  await word.click();
  await page.waitForFunction(([s]) => {
    const t = document.querySelector(".file-card audio").currentTime;
    return t >= s - 0.05 && t < s + 2;
  }, [start]);
  await card.locator(".segment.playing").waitFor();

  const download = page.waitForEvent("download");
  await card.getByRole("button", { name: /Download srt/ }).click();
  const file = await (await download).path();
  const served = await (await api(`/v1/jobs/${id}/result?format=srt`)).text();
  assert.equal(fs.readFileSync(file, "utf8"), served);
  assert.match(served, /^1\n00:00:00,\d{3} --> /);
  madeJobs = [{ id, name: "jfk.wav" }];
  await page.screenshot({ path: path.join(ARTIFACTS, "file-job-desktop-light.png"), fullPage: true });
  assert.deepEqual(errors, []);
});

test("a reload mid-job re-attaches to the job and shows its result", async () => {
  const browser = await launch();
  const { page } = await open(browser);
  const before = await page.evaluate(() => JSON.parse(localStorage.getItem("glagol.jobs") ?? "[]").length);
  await page.setInputFiles("#file-input", process.env.GLAGOL_JFK);
  const handle = await page.waitForFunction((n) => {
    const jobs = JSON.parse(localStorage.getItem("glagol.jobs") ?? "[]");
    return jobs.length > n && jobs[0].id;
  }, before);
  const id = await handle.jsonValue();
  const status = (await (await api(`/v1/jobs/${id}`)).json()).status;
  await page.reload();
  console.log(`reloaded while the job was ${status}`);
  const card = page.locator(`.file-card[data-job="${id}"]`);
  await card.locator(".status.done").waitFor({ timeout: 60_000 });
  assert.match((await card.innerText()).toLowerCase(), /ask not what your country can do for you/);
  assert.equal(await card.locator("audio").count(), 0, "after a reload the page has no local audio");
  await card.getByRole("button", { name: /Download txt/ }).isEnabled();
});

test("live microphone: partials, then a final with the clip's words", async () => {
  const browser = await launch([
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-audio-capture=${process.env.GLAGOL_LIVE_WAV}%noloop`,
  ]);
  const { context, page, errors } = await open(browser);
  await context.addInitScript(() => {
    addEventListener("DOMContentLoaded", () => {
      const partial = document.getElementById("live-partial");
      new MutationObserver(() => {
        if (partial.textContent.trim() && !document.querySelector("#live-finals .final")) window.partialSeen ??= partial.textContent;
      }).observe(partial, { childList: true, subtree: true, characterData: true });
    });
  });
  await page.reload();
  await page.click('[data-tab="live"]');
  await page.locator('#live-model option[value="whisper-base"]').waitFor({ state: "attached" });
  await page.selectOption("#live-model", "whisper-base");
  await page.selectOption("#live-language", "ru");
  await page.check("#live-raw");
  await page.click("#live-start");
  await page.locator("#live-state", { hasText: "Live" }).waitFor({ timeout: 20_000 });
  const final = page.locator("#live-finals .final").first();
  await final.waitFor({ timeout: 60_000 });
  const heard = await final.innerText();
  const partial = await page.evaluate(() => window.partialSeen ?? null);
  console.log(`live: first partial ${JSON.stringify(partial)}, final ${JSON.stringify(heard)}, ${await page.locator("#live-lag").innerText()}`);
  assert.ok(partial, "no partial came before the final");
  const expected = words(process.env.GLAGOL_LIVE_TEXT ?? "");
  const got = new Set(words(heard));
  const found = expected.filter((w) => got.has(w));
  assert.ok(found.length * 2 >= expected.length, `the final "${heard}" has ${found.length} of ${expected.length} words`);
  assert.match(await page.locator("#live-lag").innerText(), /^lag \d/);
  await page.screenshot({ path: path.join(ARTIFACTS, "live-desktop-light.png"), fullPage: true });
  await page.click("#live-start");
  await page.locator("#live-state", { hasText: "Stopped" }).waitFor({ timeout: 30_000 });
  assert.ok(await page.locator("#live-wav").isEnabled(), "the session's audio is downloadable");
  const download = page.waitForEvent("download");
  await page.click("#live-srt");
  const srt = fs.readFileSync(await (await download).path(), "utf8");
  assert.match(srt, /^1\n\d\d:\d\d:\d\d,\d{3} --> /);
  assert.deepEqual(errors, []);
});

test("on a plain-HTTP LAN address the live panel says why the microphone is off and how to fix it", async () => {
  const port = new URL(BASE).port;
  const browser = await launch([`--host-resolver-rules=MAP box.lan 127.0.0.1`]);
  const { page, errors } = await open(browser, { url: `http://box.lan:${port}/#live` });
  const warning = page.locator("#live-insecure");
  await warning.waitFor();
  assert.match(await warning.innerText(), new RegExp(`ssh -L ${port}:127\\.0\\.0\\.1:${port} box\\.lan`));
  assert.ok(await page.locator("#live-start").isDisabled());
  // Files still work from there.
  await page.locator('#file-model option[value="whisper-base"]').waitFor({ state: "attached" });
  assert.deepEqual(errors, []);
});

test("models: load and unload are reflected live", async () => {
  const browser = await launch();
  const { page } = await open(browser);
  await page.goto(`${BASE}#models`);
  const model = page.locator('li[data-model="gigaam-tiny"]');
  await model.waitFor();
  await model.getByRole("button", { name: "Load gigaam-tiny" }).click();
  await model.locator('[data-state="ready"]').waitFor({ timeout: 60_000 });
  await model.getByRole("button", { name: "Unload gigaam-tiny" }).click();
  await model.locator('[data-state="unloaded"]').waitFor({ timeout: 30_000 });
  // The catalog lists what is not installed, with the command that installs it.
  await page.click("#catalog-summary");
  const small = page.locator('li[data-catalog="whisper-small"]');
  await small.waitFor();
  assert.match(await small.innerText(), /glagol models pull whisper-small/);
  assert.equal(await page.locator('li[data-catalog="whisper-base"]').count(), 0, "installed models are not offered");
});

test("jobs: the list shows this key's jobs; open shows a result, purge deletes one", async () => {
  const browser = await launch();
  const { page } = await open(browser, { key: KEY });
  // One more job, to purge.
  const form = new FormData();
  form.append("file", new Blob([fs.readFileSync(process.env.GLAGOL_JFK)]), "to-purge.wav");
  const doomed = await (await api("/v1/jobs", { method: "POST", body: form })).json();
  await page.goto(`${BASE}#jobs`);
  const row = page.locator(`tr[data-job="${doomed.id}"]`);
  await row.getByText("done").waitFor({ timeout: 60_000 });
  page.once("dialog", (d) => d.accept());
  await row.getByRole("button", { name: "Purge to-purge.wav" }).click();
  await row.waitFor({ state: "detached" });
  const gone = await fetch(new URL(`v1/jobs/${doomed.id}`, BASE), { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(gone.status, 404);
  const [made] = madeJobs;
  assert.ok(made, "the first test made a job");
  await page.evaluate(() => localStorage.removeItem("glagol.jobs"));
  await page.locator(`tr[data-job="${made.id}"]`).getByRole("button", { name: /^Open/ }).click();
  const card = page.locator(`.file-card[data-job="${made.id}"]`);
  await card.locator(".status.done").waitFor({ timeout: 30_000 });
  assert.ok(await page.locator("#files").isVisible(), "Open switches to the Files panel");
});

test("without the key the page shows the typed error and asks for it; with it, it works", async () => {
  const browser = await launch();
  const { page } = await open(browser, { key: "" });
  await page.locator("#banner", { hasText: "missing_api_key" }).waitFor();
  assert.ok(await page.locator("#key-panel").isVisible(), "the key field opens");
  await page.fill("#api-key", "not-the-key");
  await page.click("#key-panel button[type=submit]");
  await page.locator("#banner", { hasText: "invalid_api_key" }).waitFor();
  await page.fill("#api-key", KEY);
  await page.click("#key-panel button[type=submit]");
  await page.locator("#file-model option", { hasText: "whisper-base" }).waitFor({ state: "attached" });
  assert.ok(await page.locator("#banner").isHidden());
  assert.equal(await page.evaluate(() => location.href.includes("key")), false);
});

for (const colorScheme of ["light", "dark"]) {
  for (const [device, viewport] of [["desktop", { width: 1280, height: 860 }], ["phone", { width: 390, height: 844 }]]) {
    test(`${device} ${colorScheme}: every panel fits, has no serious accessibility violations, and is photographed`, async () => {
      const browser = browsers[0] ?? await launch();
      const { page, context } = await open(browser, { colorScheme, viewport, bypassCSP: true });
      await page.addScriptTag({ path: AXE });
      for (const tab of ["files", "live", "jobs", "models"]) {
        await page.click(`[data-tab="${tab}"]`);
        await page.waitForTimeout(300);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
        assert.ok(overflow <= 0, `${tab} is ${overflow} px wider than the ${viewport.width} px screen`);
        const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
        const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
        assert.deepEqual(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(" ")}`), [], `${tab}`);
        await page.screenshot({ path: path.join(ARTIFACTS, `${tab}-${device}-${colorScheme}.png`), fullPage: true });
      }
      if (device === "phone") {
        // The narrowest phones still in use.
        await page.setViewportSize({ width: 360, height: 740 });
        for (const tab of ["files", "live", "jobs", "models"]) {
          await page.click(`[data-tab="${tab}"]`);
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
          assert.ok(overflow <= 0, `${tab} is ${overflow} px wider than a 360 px screen`);
        }
      }
      await context.close();
    });
  }
}
