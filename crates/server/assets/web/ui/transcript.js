// @ts-check
// A transcript on screen: segments (and their words) as buttons that seek
// the player, the playing one highlighted; and the plain-text and SRT
// renderings a live session downloads (file results come from the server).

import { clock, h } from "./dom.js";

/**
 * @typedef {{ start: number, end: number, text: string, speaker?: string | null,
 *   words?: { word: string, start: number, end: number }[] | null }} Segment
 */

export class TranscriptView {
  /**
   * @param {HTMLElement} root where the segments go
   * @param {(seconds: number) => void} [seek] what a click on a time does
   */
  constructor(root, seek) {
    this.root = root;
    this.seek = seek;
    /** @type {{ segment: Segment, el: HTMLElement }[]} */
    this.rows = [];
    /** @type {HTMLElement | null} */
    this.current = null;
  }

  clear() {
    this.rows = [];
    this.current = null;
    this.root.replaceChildren();
  }

  /** @param {Segment} segment */
  add(segment) {
    const text = h("span", { class: "seg-text" });
    if (segment.words?.length && this.seek) {
      segment.words.forEach((w, i) => {
        const word = h("span", { class: "word", "data-start": w.start, title: clock(w.start) }, w.word.trim());
        word.addEventListener("click", (e) => {
          e.stopPropagation();
          this.seek?.(w.start);
        });
        text.append(i ? " " : "", word);
      });
    } else {
      text.textContent = segment.text.trim();
    }
    const time = this.seek
      ? h("button", { class: "seg-time", type: "button", "aria-label": `Play from ${clock(segment.start)}`,
          onclick: () => this.seek?.(segment.start) }, clock(segment.start))
      : h("span", { class: "seg-time" }, clock(segment.start));
    const speaker = segment.speaker ? h("span", { class: "speaker" }, `Speaker ${segment.speaker}`) : null;
    const el = h("p", { class: "segment", "data-start": segment.start, "data-end": segment.end }, time, speaker, text);
    this.rows.push({ segment, el });
    this.root.append(el);
  }

  /** Highlights the segment playing at `seconds`. @param {number} seconds */
  follow(seconds) {
    const row = this.rows.find((r) => seconds >= r.segment.start && seconds < r.segment.end);
    const el = row?.el ?? null;
    if (el === this.current) return;
    this.current?.classList.remove("playing");
    this.current?.removeAttribute("aria-current");
    el?.classList.add("playing");
    el?.setAttribute("aria-current", "true");
    this.current = el;
  }

  text() {
    return this.rows
      .map((r) => (r.segment.speaker ? `Speaker ${r.segment.speaker}: ` : "") + r.segment.text.trim())
      .join("\n");
  }

  srt() {
    const stamp = (/** @type {number} */ t) => {
      const ms = Math.round(t * 1000);
      const pad = (/** @type {number} */ n, w = 2) => String(n).padStart(w, "0");
      return `${pad(Math.floor(ms / 3_600_000))}:${pad(Math.floor(ms / 60_000) % 60)}:${pad(Math.floor(ms / 1000) % 60)},${pad(ms % 1000, 3)}`;
    };
    return this.rows
      .map((r, i) => `${i + 1}\n${stamp(r.segment.start)} --> ${stamp(r.segment.end)}\n${r.segment.text.trim()}\n`)
      .join("\n");
  }
}
