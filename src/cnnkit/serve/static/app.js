// cnnkit serve page: pick or drop images, send each to /predict, draw what comes back
// (top classes as bars, boxes with labels, masks with a legend), Grad-CAM from /explain,
// the model card from /info. Plain DOM and canvas; every asset comes from this server.
"use strict";

const state = { info: null, token: sessionStorage.getItem("cnnkit-token") || "", cards: [], cams: Promise.resolve() };
const $ = (id) => document.getElementById(id);

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function api(path, body) {
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(path, body ? { method: "POST", body, headers } : { headers });
    if (r.status !== 503 || attempt >= 5) return r;
    // Backpressure: wait as the server asks (Retry-After), then try again.
    const wait = Number(r.headers.get("Retry-After") || "1");
    await new Promise((ok) => setTimeout(ok, 1000 * Math.min(Math.max(wait, 0.2), 10)));
  }
}

async function errorText(r) {
  try { return (await r.json()).error || r.statusText; } catch (e) { return r.status + " " + r.statusText; }
}

// ---- model card --------------------------------------------------------------------
async function loadInfo() {
  const r = await api("/info");
  if (r.status === 401) {
    $("token-form").hidden = false;
    $("token").focus();
    setStatus(state.token ? "That token was refused; try again." : "This server needs a token.", true);
    return;
  }
  if (!r.ok) { setStatus("Cannot read /info: " + (await errorText(r)), true); return; }
  state.info = await r.json();
  $("token-form").hidden = true;
  renderCard(state.info);
  const boxes = state.info.output === "boxes";
  $("conf-opt").hidden = !boxes;
  $("topk-opt").hidden = state.info.output !== "logits";
  $("formats").textContent = state.info.server.formats.join(", ") + " — several at once, up to " +
    Math.round(state.info.server.max_upload_bytes / 1048576) + " MiB each";
  $("title-model").textContent = state.info.model + " · " + state.info.task;
  state.method = state.info.explain_methods.includes("gradcam") ? "gradcam" : state.info.explain_methods[0];
  $("method-name").textContent = state.method === "gradcam" ? "Grad-CAM" : state.method;
  setStatus("Ready: drop or pick images.");
}

function renderCard(info) {
  const rows = [
    ["Task", info.task], ["Model", info.model + " (" + (info.parameters == null ? info.runtime :
      info.parameters.toLocaleString() + " parameters") + ")"],
    ["Input", (info.input.size || []).join(" × ") + " px, " + info.input.channels + " channel(s)"],
    ["Classes", info.classes.length + ": " + info.classes.slice(0, 30).join(", ") +
      (info.classes.length > 30 ? ", …" : "")],
  ];
  for (const [k, v] of Object.entries(info.metrics || {})) {
    rows.push([k, typeof v === "number" ? v.toFixed(4) : String(v)]);
  }
  rows.push(["Trained on", info.data || "—"], ["Epoch", info.epoch == null ? "—" : String(info.epoch)],
            ["Checkpoint", info.checkpoint], ["Batching", "up to " + info.server.max_batch + " images within " +
              info.server.max_wait_ms + " ms"]);
  const dl = $("card-body");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    dl.append(dt, dd);
  }
}

// ---- predictions -------------------------------------------------------------------
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function color(i, alpha = 1) {  // well-separated hues by the golden angle
  return "hsla(" + Math.round((i * 137.508) % 360) + ", 75%, 50%, " + alpha + ")";
}

async function handleFiles(files) {
  if (!state.info) { setStatus("The model card has not loaded yet.", true); return; }
  const list = Array.from(files);
  if (!list.length) return;
  setStatus("Predicting " + list.length + " image(s)…");
  const done = await Promise.all(list.map(predictOne));
  const ok = done.filter(Boolean).length;
  setStatus(ok + " of " + list.length + " image(s) predicted." + (ok < list.length ? " See the errors below." : ""),
            ok < list.length);
}

async function predictOne(file) {
  const card = el("article", "result");
  card.append(el("h2", null, file.name));
  $("results").prepend(card);
  const form = new FormData();
  form.append("file", file, file.name);
  const q = new URLSearchParams({ top_k: $("topk").value || "5" });
  if (state.info.output === "boxes") q.set("conf", $("conf").value || "0.25");
  const r = await api("/predict?" + q, form);
  if (!r.ok) {
    card.classList.add("failed");
    card.append(el("p", "error", await errorText(r)));
    return false;
  }
  const rec = (await r.json()).results[0];
  const bitmap = await createImageBitmap(file);
  const pictures = el("div", "pictures");
  const canvas = drawImage(bitmap);
  canvas.setAttribute("role", "img");
  pictures.append(canvas);
  card.append(pictures);
  if (rec.top) renderTop(card, rec, canvas);
  if (rec.detections) renderBoxes(card, rec.detections, canvas, bitmap);
  if (rec.instances) { renderMasks(card, rec.instances, canvas, bitmap, false); renderBoxes(card, rec.instances, canvas, bitmap); }
  if (rec.masks) renderMasks(card, rec.masks, canvas, bitmap, true, rec);
  card.append(el("p", "timing", "model " + rec.model_ms.toFixed(1) + " ms · batch of " + rec.batch_size));
  const entry = { file, card, pictures };
  state.cards.push(entry);
  if ($("gradcam").checked) queueCam(entry);
  return true;
}

function drawImage(bitmap) {
  // Small images (8 x 8 digits) are enlarged with whole pixels so they can be seen.
  const k = Math.max(1, Math.floor(256 / Math.max(bitmap.width, bitmap.height)));
  const c = document.createElement("canvas");
  c.width = bitmap.width * k; c.height = bitmap.height * k;
  const g = c.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.drawImage(bitmap, 0, 0, c.width, c.height);
  c.dataset.scale = String(k);
  return c;
}

function renderTop(card, rec, canvas) {
  const label = el("p", null);
  label.append(el("span", "label", rec.label), " " + (100 * rec.score).toFixed(1) + "%");
  card.insertBefore(label, card.querySelector(".pictures"));
  canvas.setAttribute("aria-label", "image predicted as " + rec.label);
  const ol = el("ol", "top");
  for (const t of rec.top) {
    const li = el("li");
    const bar = el("span", "bar"); const fill = el("span"); fill.style.width = (100 * t.score).toFixed(1) + "%";
    bar.append(fill);
    li.append(el("span", "name", t.label), bar, el("span", "pct", (100 * t.score).toFixed(1) + "%"));
    ol.append(li);
  }
  card.append(ol);
}

function renderBoxes(card, dets, canvas, bitmap) {
  const g = canvas.getContext("2d");
  const k = Number(canvas.dataset.scale);
  const classes = state.info.classes;
  g.font = "bold " + Math.max(11, Math.round(canvas.width / 28)) + "px system-ui, sans-serif";
  g.lineWidth = Math.max(2, Math.round(canvas.width / 200));
  const ul = el("ul", "dets");
  dets.forEach((d, i) => {
    const [x, y, w, h] = d.bbox.map((v) => v * k);
    const c = color(classes.indexOf(d.category) + 1);
    g.strokeStyle = c; g.strokeRect(x, y, w, h);
    const text = d.category + " " + d.score.toFixed(2);
    const tw = g.measureText(text).width + 6, th = parseInt(g.font.split(" ")[1], 10) + 4;
    const ty = y - th >= 0 ? y - th : y;
    g.fillStyle = c; g.fillRect(x, ty, tw, th);
    g.fillStyle = "#fff"; g.fillText(text, x + 3, ty + th - 4);
    const li = el("li", "det");
    const sw = el("span", "swatch"); sw.style.background = c;
    li.append(sw, d.category + " — " + d.score.toFixed(2) + " at " + d.bbox.map((v) => Math.round(v)).join(", "));
    ul.append(li);
  });
  canvas.setAttribute("aria-label", dets.length + " object(s) found");
  card.append(el("p", "label", dets.length + " object(s)"), ul);
}

// COCO's compressed RLE (pycocotools' string form): column-major run lengths, first run is 0s.
function decodeRle(rle) {
  const [h, w] = rle.size, s = rle.counts, counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = s.charCodeAt(p) - 48; x |= (c & 0x1f) << (5 * k); more = c & 0x20; p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const mask = new Uint8Array(h * w);  // row-major
  let idx = 0, v = 0;
  for (const n of counts) {
    for (let j = 0; j < n; j++, idx++) if (v) mask[(idx % h) * w + Math.floor(idx / h)] = 1;
    v = 1 - v;
  }
  return mask;
}

function renderMasks(card, masks, canvas, bitmap, legend, rec) {
  const w = bitmap.width, h = bitmap.height, k = Number(canvas.dataset.scale);
  const layer = new ImageData(w, h);
  const classes = state.info.classes;
  const rows = [];
  for (const m of masks) {
    const idx = m.class_index != null ? m.class_index : classes.indexOf(m.category) + 1;
    if (legend && idx === 0 && /^_?background_?$/i.test(m.category)) { rows.push([m, idx]); continue; }
    const bits = decodeRle(m.segmentation);
    const rgb = hsl(idx);
    for (let i = 0; i < bits.length; i++) {
      if (bits[i]) { layer.data.set([rgb[0], rgb[1], rgb[2], 140], 4 * i); }
    }
    rows.push([m, idx]);
  }
  const off = document.createElement("canvas");
  off.width = w; off.height = h;
  off.getContext("2d").putImageData(layer, 0, 0);
  const g = canvas.getContext("2d");
  g.imageSmoothingEnabled = false;
  g.drawImage(off, 0, 0, w * k, h * k);
  if (!legend) return;
  const total = w * h;
  const ul = el("ul", "legend");
  rows.sort((a, b) => b[0].pixels - a[0].pixels);
  for (const [m, idx] of rows) {
    const li = el("li");
    const sw = el("span", "swatch"); sw.style.background = idx === 0 ? "transparent" : color(idx);
    li.append(sw, m.category + " — " + (100 * m.pixels / total).toFixed(1) + "% (" + m.pixels + " px)");
    ul.append(li);
  }
  canvas.setAttribute("aria-label", "mask of " + rows.length + " class(es)");
  card.append(ul);
}

function hsl(i) {  // color(i) as 0..255 RGB for ImageData
  const hue = (i * 137.508) % 360, s = 0.75, l = 0.5;
  const f = (n) => { const k = (n + hue / 30) % 12; return l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1)); };
  return [f(0), f(8), f(4)].map((v) => Math.round(255 * v));
}

// ---- Grad-CAM ----------------------------------------------------------------------
function queueCam(entry) {  // one explanation at a time: each is seconds of server time
  state.cams = state.cams.then(() => addCam(entry)).catch(() => {});
}

async function addCam(entry) {
  if (entry.cam) { entry.cam.hidden = false; return; }
  const form = new FormData();
  form.append("file", entry.file, entry.file.name);
  const r = await api("/explain?method=" + state.method, form);
  if (!r.ok) { entry.card.append(el("p", "error", state.method + ": " + (await errorText(r)))); return; }
  const img = el("img", "cam");
  img.alt = state.method + " map of " + entry.file.name;
  img.src = URL.createObjectURL(await r.blob());
  entry.cam = img;
  entry.pictures.append(img);
  img.hidden = !$("gradcam").checked;
}

// ---- wiring ------------------------------------------------------------------------
function setup() {
  const drop = $("drop");
  $("files").addEventListener("change", (e) => { handleFiles(e.target.files); e.target.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); handleFiles(e.dataTransfer.files); });
  $("gradcam").addEventListener("change", (e) => {
    for (const entry of state.cards) {
      if (e.target.checked) queueCam(entry); else if (entry.cam) entry.cam.hidden = true;
    }
  });
  $("clear").addEventListener("click", () => { $("results").replaceChildren(); state.cards = []; setStatus("Cleared."); });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("cnnkit-token", state.token);
    loadInfo();
  });
  loadInfo();
}

document.addEventListener("DOMContentLoaded", setup);
