// The concept explorer's one page: no external resources (no CDN, no fonts), inline CSS and
// script over the JSON API. Pick a test image (by class, by position) or upload one; see the
// image, its reconstruction from the concepts, f's and Theta's top classes, and the concepts
// that matter for the predicted class, each with a slider (multiplier 0-4, or an absolute
// value), a gallery of its top-activating test images and a heatmap button. Moving a slider
// regenerates the image (debounced) and shows the new prediction and the latency. `?selftest=1`
// drives the page once (first image, first slider to 4, heatmap on) and writes PASS or FAIL
// into #selftest: the browser test reads it.
enum ExplorerPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>VisCoIN concept explorer</title>
<style>
  :root { --fg: #1d2330; --muted: #667085; --line: #d0d5dd; --accent: #2f6fde; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 10px 18px; background: #fff; border-bottom: 1px solid var(--line); display: flex; gap: 18px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .info { color: var(--muted); }
  main { display: grid; grid-template-columns: 300px 1fr; gap: 14px; padding: 14px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  .controls { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 8px; align-items: center; }
  select, input[type=number], button { font: inherit; padding: 3px 6px; border: 1px solid var(--line); border-radius: 5px; background: #fff; }
  button { cursor: pointer; } button:hover { border-color: var(--accent); }
  .thumbs { display: grid; grid-template-columns: repeat(6, 1fr); gap: 4px; max-height: 430px; overflow-y: auto; }
  .thumbs img, .gallery img { width: 100%; image-rendering: pixelated; border-radius: 3px; cursor: pointer; border: 2px solid transparent; }
  .thumbs img.selected { border-color: var(--accent); }
  .pictures { display: flex; gap: 14px; flex-wrap: wrap; }
  figure { margin: 0; text-align: center; }
  figure img { width: 224px; height: 224px; image-rendering: pixelated; border: 1px solid var(--line); border-radius: 4px; background: #eee; }
  figcaption { color: var(--muted); font-size: 12px; margin-top: 3px; }
  table.preds { border-collapse: collapse; width: 100%; font-size: 12px; }
  table.preds td { padding: 1px 4px; } table.preds td.p { text-align: right; font-variant-numeric: tabular-nums; width: 52px; }
  .bar { height: 8px; background: var(--accent); border-radius: 2px; }
  .predgrid { display: grid; grid-template-columns: repeat(4, minmax(150px, 1fr)); gap: 10px; margin-top: 10px; }
  .concept { display: grid; grid-template-columns: 92px 1fr 160px 54px; gap: 8px; align-items: center; padding: 6px 0; border-top: 1px solid #eef0f3; }
  .concept .name { font-weight: 600; } .concept .meta { color: var(--muted); font-size: 12px; font-weight: 400; }
  .concept input[type=range] { width: 100%; }
  .gallery { display: grid; grid-template-columns: repeat(6, 1fr); gap: 2px; }
  .status { color: var(--muted); font-size: 12px; min-height: 18px; }
  .error { color: #b42318; }
  #selftest { display: none; }
</style>
</head>
<body>
<header><h1>VisCoIN concept explorer</h1><span class="info" id="info">loading…</span></header>
<main>
  <section>
    <h2>Image</h2>
    <div class="controls">
      <select id="class"><option value="">all classes</option></select>
      <input id="position" type="number" min="0" placeholder="test #" style="width:80px">
      <button id="go">open</button>
    </div>
    <div class="controls"><label>upload <input id="file" type="file" accept="image/png,image/jpeg"></label></div>
    <div class="status" id="liststatus"></div>
    <div class="thumbs" id="thumbs"></div>
    <div class="controls"><button id="prev">◀</button><button id="next">▶</button></div>
  </section>
  <section>
    <div class="pictures">
      <figure><img id="original" alt="image"><figcaption id="originalcap">image</figcaption></figure>
      <figure><img id="reconstruction" alt="reconstruction"><figcaption>reconstruction from the concepts</figcaption></figure>
      <figure><img id="regenerated" alt="regenerated"><figcaption id="regencap">regenerated with the sliders</figcaption></figure>
    </div>
    <div class="controls" style="margin-top:8px">
      <label><input type="checkbox" id="heat"> heatmap</label>
      <select id="heatkind"><option value="gradcam">Grad-CAM (stage 2 of f)</option><option value="phi">Φ map (3×3)</option></select>
      <span class="status" id="heatstatus">on the image: the predicted class (click a concept's ◎ to show that concept)</span>
    </div>
    <div class="predgrid">
      <div><h2>f on the image</h2><table class="preds" id="pf"></table></div>
      <div><h2>Θ on the image</h2><table class="preds" id="pt"></table></div>
      <div><h2>f on the regenerated image</h2><table class="preds" id="rf"></table></div>
      <div><h2>Θ on the regenerated image</h2><table class="preds" id="rt"></table></div>
    </div>
    <div class="status" id="status"></div>
    <h2 style="margin-top:12px">Concepts that matter for the predicted class <span class="meta" id="predclass"></span></h2>
    <div class="controls">
      <select id="mode"><option value="multiplier">sliders: multiplier 0–4</option><option value="value">sliders: absolute value</option></select>
      <button id="reset">reset</button>
    </div>
    <div id="concepts"></div>
  </section>
</main>
<pre id="selftest"></pre>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const state = { info: null, source: null, analysis: null, offset: 0, limit: 60, total: 0, heatConcept: null, timer: null, seq: 0 };

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": body instanceof Blob ? body.type || "application/octet-stream" : "application/json" },
                                           body: body instanceof Blob ? body : JSON.stringify(body) };
  const response = await fetch(path, init);
  const json = await response.json();
  if (!response.ok) throw new Error(json.error || response.statusText);
  return json;
}
function fail(e) { $("status").innerHTML = ""; const s = document.createElement("span"); s.className = "error"; s.textContent = String(e.message || e); $("status").appendChild(s); }
function className(i) { return state.info.classes[i] ?? String(i); }

function predictions(table, list) {
  table.innerHTML = "";
  for (const c of list) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td></td><td style="width:60px"><div class="bar" style="width:${Math.round(c.probability * 100)}%"></div></td><td class="p">${(c.probability * 100).toFixed(1)}%</td>`;
    tr.firstChild.textContent = c.name;
    table.appendChild(tr);
  }
}

async function loadList() {
  const cls = $("class").value;
  const q = `/api/images?offset=${state.offset}&limit=${state.limit}` + (cls === "" ? "" : `&class=${cls}`);
  const r = await api(q);
  state.total = r.total;
  $("liststatus").textContent = `${r.total} test images` + (r.total ? `, showing ${state.offset}–${state.offset + r.images.length - 1}` : "");
  const box = $("thumbs"); box.innerHTML = "";
  for (const im of r.images) {
    const img = document.createElement("img");
    img.src = `/api/image/${im.position}`; img.title = `test #${im.position}: ${className(im.label)}`; img.dataset.position = im.position;
    img.onclick = () => open({ image: im.position }).catch(fail);
    box.appendChild(img);
  }
  markSelected();
}
function markSelected() {
  for (const img of $("thumbs").children) img.classList.toggle("selected", state.source && state.source.image === Number(img.dataset.position));
}

async function open(source) {
  state.source = source; state.heatConcept = null;
  $("status").textContent = "analysing…";
  const t = performance.now();
  const a = await api("/api/predict", source);
  state.analysis = a;
  $("original").src = a.original; $("reconstruction").src = a.reconstruction.image; $("regenerated").src = a.reconstruction.image;
  $("originalcap").textContent = source.image !== undefined ? `test #${source.image}` + (a.label === null ? "" : ` — ${className(a.label)}`) : "uploaded image";
  predictions($("pf"), a.original_classifier); predictions($("pt"), a.original_explainer);
  predictions($("rf"), a.reconstruction.classifier); predictions($("rt"), a.reconstruction.explainer);
  $("predclass").textContent = `(Θ predicts ${className(a.predicted_class)}; v_j = max Φ_j × Θ weight, normalised)`;
  buildConcepts(a);
  $("status").textContent = `analysed in ${(performance.now() - t).toFixed(0)} ms (server ${a.latency_ms.toFixed(0)} ms)`;
  $("regencap").textContent = "regenerated with the sliders";
  markSelected();
  if ($("heat").checked) await showHeatmap();
}

function buildConcepts(a) {
  const box = $("concepts"); box.innerHTML = "";
  const valueMode = $("mode").value === "value";
  for (const c of a.concepts) {
    const row = document.createElement("div"); row.className = "concept";
    const max = valueMode ? Math.max(1, c.activation * 4) : 4;
    row.innerHTML = `<div class="name">c${c.index}<div class="meta">v=${c.intensity.toFixed(2)} a=${c.activation.toFixed(2)}</div></div>
      <div><input type="range" min="0" max="${max.toFixed(3)}" step="${(max / 80).toFixed(4)}" value="${valueMode ? c.activation : 1}" data-concept="${c.index}">
      <div class="meta"><span class="val"></span></div></div><div class="gallery"></div><button title="heatmap of this concept">◎</button>`;
    const slider = row.querySelector("input"), label = row.querySelector(".val");
    const show = () => { label.textContent = valueMode ? `max Φ = ${Number(slider.value).toFixed(2)}` : `× ${Number(slider.value).toFixed(2)}`; };
    show();
    slider.addEventListener("input", () => { show(); schedule(); });
    for (const p of c.top_images) {
      const img = document.createElement("img"); img.src = `/api/image/${p}`; img.title = `test #${p}`;
      img.onclick = () => open({ image: p }).catch(fail);
      row.querySelector(".gallery").appendChild(img);
    }
    row.querySelector("button").onclick = () => { state.heatConcept = c.index; $("heat").checked = true; showHeatmap().catch(fail); };
    box.appendChild(row);
  }
}

function schedule() { clearTimeout(state.timer); state.timer = setTimeout(() => regenerate().catch(fail), 120); }

async function regenerate() {
  if (!state.source) return;
  const valueMode = $("mode").value === "value";
  const body = Object.assign({}, state.source, valueMode ? { values: {} } : { multipliers: {} });
  for (const s of $("concepts").querySelectorAll("input[type=range]")) (valueMode ? body.values : body.multipliers)[s.dataset.concept] = Number(s.value);
  const seq = ++state.seq, t = performance.now();
  const r = await api("/api/regenerate", body);
  if (seq !== state.seq) return;  // a newer request is on its way
  $("regenerated").src = r.image;
  predictions($("rf"), r.classifier); predictions($("rt"), r.explainer);
  $("regencap").textContent = `regenerated in ${(performance.now() - t).toFixed(0)} ms (server ${r.latency_ms.toFixed(0)} ms)`;
  return r;
}

async function showHeatmap() {
  if (!state.source || !state.analysis) return;
  if (!$("heat").checked) { $("original").src = state.analysis.original; $("heatstatus").textContent = "heatmap off"; return; }
  const kind = state.heatConcept === null ? "gradcam" : $("heatkind").value;
  const r = await api("/api/heatmap", Object.assign({}, state.source, { concept: state.heatConcept, kind }));
  $("original").src = r.overlay;
  $("heatstatus").textContent = (r.target === "class" ? `Grad-CAM of Θ's class ${className(r.index)}` : `concept c${r.index} (${r.kind}, peak ${r.peak.toFixed(3)})`)
    + `, ${r.width}×${r.height} cells, ${r.latency_ms.toFixed(0)} ms`;
  return r;
}

async function start() {
  state.info = await api("/api/info");
  const i = state.info;
  $("info").textContent = `${i.test_images} test images · ${i.classes.length} classes · ${i.concepts} concepts · ${i.resolution}px`;
  i.classes.forEach((name, k) => { const o = document.createElement("option"); o.value = k; o.textContent = name; $("class").appendChild(o); });
  $("class").onchange = () => { state.offset = 0; loadList().catch(fail); };
  $("prev").onclick = () => { state.offset = Math.max(0, state.offset - state.limit); loadList().catch(fail); };
  $("next").onclick = () => { if (state.offset + state.limit < state.total) { state.offset += state.limit; loadList().catch(fail); } };
  $("go").onclick = () => open({ image: Number($("position").value) }).catch(fail);
  $("position").addEventListener("keydown", (e) => { if (e.key === "Enter") $("go").click(); });
  $("heat").onchange = () => showHeatmap().catch(fail);
  $("heatkind").onchange = () => showHeatmap().catch(fail);
  $("mode").onchange = () => { if (state.analysis) { buildConcepts(state.analysis); regenerate().catch(fail); } };
  $("reset").onclick = () => { if (state.analysis) { buildConcepts(state.analysis); regenerate().catch(fail); } };
  $("file").onchange = async () => {
    const f = $("file").files[0]; if (!f) return;
    try {
      if (f.size > i.max_upload_bytes) throw new Error(`the file has ${f.size} bytes; at most ${i.max_upload_bytes} are accepted`);
      const r = await api("/api/upload", f);
      await open({ upload: r.upload });
    } catch (e) { fail(e); }
  };
  await loadList();
  if (i.test_images > 0) await open({ image: 0 });
}

async function selftest() {
  const out = $("selftest");
  try {
    await start();
    const before = state.analysis;
    const slider = $("concepts").querySelector("input[type=range]");
    if (!slider) throw new Error("no concept slider");
    slider.value = slider.max; slider.dispatchEvent(new Event("input"));
    let r = null;
    for (let k = 0; k < 200 && $("regencap").textContent.indexOf("regenerated in") < 0; k++) await new Promise((ok) => setTimeout(ok, 50));
    r = await regenerate();
    const imageChanged = r.image !== before.reconstruction.image && $("regenerated").src === r.image;
    const key = (list) => list.map((c) => c.index + ":" + c.probability.toFixed(5)).join(",");
    const predictionChanged = key(r.explainer) !== key(before.reconstruction.explainer) || key(r.classifier) !== key(before.reconstruction.classifier);
    $("heat").checked = true;
    const h = await showHeatmap();
    const heatmapShown = h && $("original").src === h.overlay;
    const ok = imageChanged && predictionChanged && heatmapShown;
    out.textContent = `SELFTEST ${ok ? "PASS" : "FAIL"} image_changed=${imageChanged} prediction_changed=${predictionChanged} heatmap=${heatmapShown} `
      + `concept=c${slider.dataset.concept} multiplier=${slider.value} latency_ms=${r.latency_ms.toFixed(1)} `
      + `explainer_before=${key(before.reconstruction.explainer)} explainer_after=${key(r.explainer)}`;
  } catch (e) { out.textContent = "SELFTEST FAIL " + (e.message || e); }
  document.title = out.textContent.slice(0, 40);
}

if (new URLSearchParams(location.search).get("selftest") === "1") selftest(); else start().catch(fail);
</script>
</body>
</html>
"""#
}
