// @ts-check
// Small DOM helpers shared by the page's panels.

/**
 * Creates an element: `h("button", { class: "x", onclick }, "text", child)`.
 * Attributes starting with `on` are listeners; `false`/`null` are skipped.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

/**
 * The element with this id (the page's own markup; missing is a bug).
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing`);
  return /** @type {T} */ (el);
}

/** `m:ss` or `h:mm:ss` for a player position. @param {number} seconds */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${mm.padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** A size for people: `1.4 MB`. @param {number} bytes */
export function size(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let n = bytes;
  let unit = 0;
  while (n >= 1000 && unit < units.length - 1) (n /= 1000), unit++;
  return `${n.toFixed(n < 10 && unit ? 1 : 0)} ${units[unit]}`;
}

/** Saves a Blob as a file (the key-safe way to download). */
export function saveBlob(/** @type {Blob} */ blob, /** @type {string} */ name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Copies text, saying so in the element's label for a moment. */
export async function copyText(/** @type {string} */ text, /** @type {HTMLElement} */ button) {
  await navigator.clipboard.writeText(text);
  const before = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = before), 1500);
}

/** A file name without its extension. @param {string} name */
export function stem(name) {
  return name.replace(/\.[^.]+$/, "") || "transcript";
}
