// The page of `lcnn serve`: lists the models, posts a dropped or picked file to the JSON API and shows the
// answer. Server values are only ever set as text (textContent / SVG attributes), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const KEY = "lcnn-api-key";

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function call(path, body) {
  const response = await fetch(path, { method: body ? "POST" : "GET", body, headers: authHeaders() });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    const error = new Error(data.detail ? `${data.error}: ${data.detail}` : data.error);
    error.status = response.status;
    throw error;
  }
  return data;
}

const fmt = (x, digits = 3) => (x === null || x === undefined ? "none" : Number(x).toFixed(digits));

function draw(parent, name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  parent.appendChild(el);
  return el;
}

// A number line with the threshold and the score on it.
function drawGauge(el, score, threshold, decision) {
  el.replaceChildren();
  let lo = Math.min(score, threshold ?? score), hi = Math.max(score, threshold ?? score);
  const pad = Math.max((hi - lo) * 0.5, 1);
  lo -= pad; hi += pad;
  const x = (v) => 20 + (360 * (v - lo)) / (hi - lo);
  draw(el, "line", { x1: 20, x2: 380, y1: 24, y2: 24, class: "axis" });
  if (threshold !== null) {
    draw(el, "line", { x1: x(threshold), x2: x(threshold), y1: 12, y2: 36, class: "threshold" });
    draw(el, "text", { x: x(threshold), y: 47, "text-anchor": "middle" }, `threshold ${fmt(threshold)}`);
  }
  draw(el, "circle", { cx: x(score), cy: 24, r: 6, class: `point ${decision ?? ""}` });
  draw(el, "text", { x: x(score), y: 10, "text-anchor": "middle" }, `score ${fmt(score)}`);
}

// Segment scores over time, with the threshold as a dashed line.
function drawSegments(el, segments, threshold, duration) {
  el.replaceChildren();
  const scores = segments.map((s) => s.score).concat(threshold ?? []);
  let lo = Math.min(...scores), hi = Math.max(...scores);
  const pad = Math.max((hi - lo) * 0.1, 0.1);
  lo -= pad; hi += pad;
  const x = (t) => 40 + (350 * t) / duration, y = (v) => 140 - (130 * (v - lo)) / (hi - lo);
  draw(el, "line", { x1: 40, x2: 390, y1: 140, y2: 140, class: "axis" });
  draw(el, "line", { x1: 40, x2: 40, y1: 10, y2: 140, class: "axis" });
  draw(el, "text", { x: 36, y: 14, "text-anchor": "end" }, fmt(hi, 2));
  draw(el, "text", { x: 36, y: 140, "text-anchor": "end" }, fmt(lo, 2));
  draw(el, "text", { x: 40, y: 155 }, "0 s");
  draw(el, "text", { x: 390, y: 155, "text-anchor": "end" }, `${fmt(duration, 1)} s`);
  if (threshold !== null) draw(el, "line", { x1: 40, x2: 390, y1: y(threshold), y2: y(threshold), class: "threshold" });
  const mid = segments.map((s) => [x((s.start + s.end) / 2), y(s.score)]);
  draw(el, "polyline", { points: mid.map((p) => p.join(",")).join(" "), class: "curve" });
  segments.forEach((s, i) => {
    const dot = draw(el, "circle", { cx: mid[i][0], cy: mid[i][1], r: 3.5, class: `point ${s.decision ?? ""}` });
    draw(dot, "title", {}, `${fmt(s.start, 2)}-${fmt(s.end, 2)} s: ${fmt(s.score)}`);
  });
}

function showDecision(el, text, kind) {
  el.textContent = text;
  el.className = `decision ${kind ?? ""}`;
  el.dataset.decision = kind ?? "";
}

function showError(prefix, error) {
  $(`${prefix}-result`).hidden = false;
  showDecision($(`${prefix}-decision`), "Error", "error");
  $(`${prefix}-score`).textContent = error.message;
  $(`${prefix}-score`).className = "error";
  if (error.status === 401) $("key").open = true;
}

function withModel(form, prefix) {
  const model = $(`${prefix}-model`).value;
  if (model) form.append("model", model);
  return form;
}

async function scoreAudio(file) {
  if (!file) return;
  $("spoof-result").hidden = false;
  $("spoof-segments").hidden = true;
  $("spoof-gauge").replaceChildren();
  showDecision($("spoof-decision"), `Scoring ${file.name}…`, "pending");
  $("spoof-score").textContent = "";
  const form = new FormData();
  form.append("audio", file);
  try {
    const r = await call("/v1/spoof", withModel(form, "spoof"));
    const label = { bonafide: "Bona fide", spoof: "Spoof" }[r.decision] ?? "No decision (no threshold stored)";
    showDecision($("spoof-decision"), label, r.decision);
    const versus = r.threshold === null ? "" :
      ` (${r.score >= r.threshold ? "at or above" : "below"} the threshold ${fmt(r.threshold)})`;
    const llr = r.llr === null ? "" : `, LLR ${fmt(r.llr)}`;
    $("spoof-score").className = "";
    $("spoof-score").textContent = `${file.name}: ${fmt(r.duration, 2)} s, score ${fmt(r.score)}${versus}${llr}.`;
    drawGauge($("spoof-gauge"), r.score, r.threshold, r.decision);
    if (r.segments) {
      drawSegments($("spoof-plot"), r.segments, r.threshold, r.duration);
      const spoofed = r.segments.filter((s) => s.decision === "spoof").length;
      $("spoof-plot-caption").textContent = `Scores of ${r.segments.length} windows of ` +
        `${fmt(r.segments[0].end - r.segments[0].start, 2)} s` +
        (r.threshold === null ? "." : `; ${spoofed} of them below the threshold (dashed).`);
      $("spoof-segments").hidden = false;
    }
  } catch (error) {
    showError("spoof", error);
  }
}

function preview(input) {
  const img = $(`${input.id}-preview`);
  if (img.src) URL.revokeObjectURL(img.src);
  img.hidden = !input.files[0];
  if (input.files[0]) {
    img.src = URL.createObjectURL(input.files[0]);
    img.alt = `preview of ${input.files[0].name}`;
  }
}

async function compareFaces(event) {
  event.preventDefault();
  $("face-result").hidden = false;
  showDecision($("face-decision"), "Comparing…", "pending");
  $("face-score").textContent = "";
  const form = new FormData();
  form.append("image1", $("face-1").files[0]);
  form.append("image2", $("face-2").files[0]);
  try {
    const r = await call("/v1/verify", withModel(form, "face"));
    const kind = r.same === null ? null : r.same ? "same" : "different";
    const label = { same: "Same person", different: "Different people" }[kind] ?? "No decision (no threshold stored)";
    showDecision($("face-decision"), label, kind);
    $("face-score").className = "";
    $("face-score").textContent = `Cosine similarity ${fmt(r.similarity)}, threshold ${fmt(r.threshold)}.`;
  } catch (error) {
    showError("face", error);
  }
}

async function identify(input) {
  preview(input);
  const file = input.files[0];
  if (!file) return;
  $("identify-result").hidden = false;
  showDecision($("identify-decision"), "Searching…", "pending");
  $("identify-score").textContent = "";
  const form = new FormData();
  form.append("image", file);
  form.append("top_k", "3");
  try {
    const r = await call("/v1/identify", withModel(form, "face"));
    const [best, ...others] = r.matches[0];
    const known = best.identity !== "unknown";
    showDecision($("identify-decision"), known ? best.identity : "Unknown", known ? "same" : "different");
    const listed = (known ? [best, ...others] : others).map((m) => `${m.identity} ${fmt(m.similarity)}`);
    $("identify-score").className = "";
    $("identify-score").textContent = `Nearest: ${listed.join(", ")}; threshold ${fmt(r.threshold)}.`;
  } catch (error) {
    showError("identify", error);
  }
}

function fillModels(models) {
  for (const task of ["spoof", "face"]) {
    const own = models.filter((m) => m.task === task);
    const select = $(`${task}-model`);
    select.replaceChildren(...own.map((m) => new Option(`${m.name} (${m.architecture})`, m.name)));
    select.parentElement.hidden = own.length < 2;
    $(task).hidden = own.length === 0;
  }
  $("identify").hidden = $("face").hidden;
  const names = models.map((m) => `${m.name} (${m.task}, ${m.architecture}, ${m.precision})`);
  $("status").textContent = models.length ? `Serving ${names.join("; ")}.` : "No models are loaded.";
}

async function loadModels() {
  try {
    fillModels((await call("/v1/models")).models);
  } catch (error) {
    $("status").textContent = error.status === 401 ?
      "This server needs an API key: enter it under API key below." : `Cannot list the models: ${error.message}`;
    if (error.status === 401) $("key").open = true;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY) ?? "";
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    loadModels();
  });
  $("spoof-file").addEventListener("change", (e) => scoreAudio(e.target.files[0]));
  const drop = $("spoof-drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    scoreAudio(e.dataTransfer.files[0]);
  });
  for (const id of ["face-1", "face-2"]) $(id).addEventListener("change", (e) => preview(e.target));
  $("face-form").addEventListener("submit", compareFaces);
  $("identify-file").addEventListener("change", (e) => identify(e.target));
  loadModels();
});
