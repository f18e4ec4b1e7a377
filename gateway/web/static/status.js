// The status page's refresh: polls status.json and updates the page in place (no reload).
// It reads only what gateway/web/status_html.py writes: tables with data-source, rows with
// data-key, cells with data-field and data-format, a <template> row per table, and elements with
// data-summary. The formats below match status_html.FORMATS.
"use strict";

(() => {
  const DASH = "\u2013";
  const body = document.body;
  const seconds = Number(body.dataset.refreshSeconds) || 5;
  const number = (value) => String(value);
  const orDash = (write) => (value) => (value === null || value === undefined ? DASH : write(value));
  const text = (value) => (value === null || value === undefined || value === "" ? DASH : String(value));

  const FORMATS = {
    text,
    count: orDash((value) => String(Math.round(value))),
    rate: orDash((value) => `${value.toFixed(2)}/s`),
    ms: orDash((value) => `${(value * 1000).toFixed(1)} ms`),
    pct: orDash((value) => `${(value * 100).toFixed(1)} %`),
    percent: orDash((value) => `${number(value)} %`),
    up: (value) => (value ? "up" : "down"),
    state: text,
    arms: (arms) =>
      (arms || []).map((a) => `${a.arm}: ${(a.share * 100).toFixed(1)} % (weight ${number(a.weight)})`).join(", ") || DASH,
    shadows: (shadows) =>
      (shadows || []).map((s) => `${s.arm}: ${s.percent === null ? "?" : number(s.percent)} %`).join(", ") || DASH,
  };

  function show(element, value) {
    const format = element.dataset.format || "text";
    const shown = (FORMATS[format] || text)(value);
    if (element.textContent !== shown) element.textContent = shown;
    if (format === "up") element.dataset.state = shown;
    if (format === "state") element.dataset.state = text(value);
    if ("alarm" in element.dataset) element.dataset.alarm = String(typeof value === "number" && value > 0);
  }

  function update(table, rows) {
    const tbody = table.tBodies[0];
    const template = table.querySelector("template");
    const existing = new Map();
    tbody.querySelectorAll("tr[data-key]").forEach((row) => existing.set(row.dataset.key, row));
    let previous = null;
    for (const record of rows) {
      let row = existing.get(record.key);
      if (row) {
        existing.delete(record.key);
      } else {
        row = template.content.firstElementChild.cloneNode(true);
        row.dataset.key = record.key;
      }
      row.querySelectorAll("[data-field]").forEach((cell) => show(cell, record[cell.dataset.field]));
      // Move a row only when it is out of place, so unchanged rows are left alone.
      if (row.previousElementSibling !== previous || !row.parentNode) {
        if (previous) previous.after(row);
        else tbody.prepend(row);
      }
      previous = row;
    }
    existing.forEach((row) => row.remove());
    const empty = tbody.querySelector("tr.empty");
    if (empty) empty.hidden = rows.length > 0;
  }

  const state = document.getElementById("refresh-state");
  const generated = document.getElementById("generated");
  const windowSpan = document.getElementById("window");
  const button = document.getElementById("pause");
  let paused = false;
  let timer = null;

  function say(message) {
    if (state.textContent !== message) state.textContent = message;
  }

  function apply(doc) {
    document.querySelectorAll("table[data-source]").forEach((table) => update(table, doc[table.dataset.source] || []));
    document.querySelectorAll("[data-summary]").forEach((element) => show(element, doc.summary[element.dataset.summary]));
    windowSpan.textContent = `${Math.round(doc.window_seconds)} s`;
    generated.dateTime = doc.generated_at;
    generated.textContent = `${doc.generated_at.slice(11, 19)} UTC`;
    say(`Live, every ${seconds} s`);
  }

  async function refresh() {
    timer = null;
    try {
      const response = await fetch("status.json", { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const doc = await response.json();
      if (!paused) apply(doc);
    } catch (error) {
      say(`Update failed (${error.message}); retrying`);
    }
    schedule();
  }

  function schedule() {
    if (!paused && timer === null) timer = window.setTimeout(refresh, seconds * 1000);
  }

  button.addEventListener("click", () => {
    paused = !paused;
    button.setAttribute("aria-pressed", String(paused));
    button.textContent = paused ? "Resume updates" : "Pause updates";
    if (paused) {
      window.clearTimeout(timer);
      timer = null;
      say("Paused");
    } else {
      refresh();
    }
  });

  button.hidden = false;
  body.classList.add("live");
  refresh();
})();
