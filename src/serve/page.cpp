// The one-page chat served at `/` by `sdmlm serve`: no external assets. Each answer shows its
// verdict: a badge for HR / not HR, the probability of Yes and the nearest training exemplars.
// `/?q=TEXT` asks TEXT on load (and `&key=KEY` sets the API key), which is how the headless-browser
// test drives it.
#include <string>

namespace sdmlm::serve {

std::string chat_page_html() {
  return R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sdmlm serve</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 12px 20px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header span { font-size: 13px; opacity: 0.8; }
  main { max-width: 860px; margin: 0 auto; padding: 16px; }
  form { display: flex; gap: 8px; margin-bottom: 8px; }
  textarea { flex: 1; font: inherit; padding: 8px; min-height: 48px; border: 1px solid #c5cad3; border-radius: 6px; }
  button { font: inherit; padding: 0 18px; border: 0; border-radius: 6px; background: #2456d3; color: #fff; cursor: pointer; }
  button:disabled { background: #8ea3d9; }
  .settings { font-size: 13px; color: #555; margin-bottom: 16px; display: flex; gap: 12px; flex-wrap: wrap; }
  .settings input { font: inherit; font-size: 13px; width: 90px; }
  .card { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 12px 14px; margin-bottom: 12px; }
  .question { color: #555; font-size: 14px; margin-bottom: 6px; white-space: pre-wrap; }
  .answer { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 14px; margin: 6px 0; }
  .badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 600; margin-right: 8px; }
  .hr { background: #d8f5df; color: #11632a; border: 1px solid #7bcf92; }
  .nothr { background: #fde8d7; color: #8a3a06; border: 1px solid #f0a46b; }
  .meta { font-size: 13px; color: #444; }
  .exemplars { font-size: 12px; color: #555; margin: 6px 0 0 0; padding-left: 18px; }
  .error { color: #a11; }
</style>
</head>
<body>
<header><h1>sdmlm serve</h1><span id="model">…</span></header>
<main>
  <form id="ask">
    <textarea id="prompt" placeholder="Ask the model (each question is answered and verified on its own)"></textarea>
    <button id="send" type="submit">Send</button>
  </form>
  <div class="settings">
    <label>API key <input id="key" type="password" autocomplete="off"></label>
    <label>max_tokens <input id="max_tokens" type="number" value="128" min="1"></label>
    <label>temperature <input id="temperature" type="number" value="0" min="0" max="2" step="0.1"></label>
    <label>search_depth <input id="search_depth" type="number" value="0" min="0" max="16"></label>
  </div>
  <div id="log"></div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
if (params.get("key")) $("key").value = params.get("key");
let verifier = false;
function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) { $("model").textContent = j.error ? j.error.message : "error"; return null; }
    const m = j.data[0];
    verifier = m.sdm && m.sdm.verifier;
    $("model").textContent = m.id + (verifier ? " · SDM verifier (α = " + m.sdm.alpha + ")" : " · no verifier");
    return m.id;
  } catch (e) { $("model").textContent = String(e); return null; }
}
async function ask(text) {
  const card = el("div", "card");
  card.appendChild(el("div", "question", text));
  const answer = el("div", "answer", "…");
  card.appendChild(answer);
  $("log").prepend(card);
  $("send").disabled = true;
  try {
    const model = await loadModel();
    const body = { model: model, messages: [{ role: "user", content: text }],
                   max_tokens: Number($("max_tokens").value), temperature: Number($("temperature").value) };
    if (verifier) { body.search_depth = Number($("search_depth").value); body.nearest_exemplars = 3; }
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    const j = await r.json();
    if (!r.ok) { answer.textContent = ""; answer.appendChild(el("span", "error", (j.error && j.error.message) || r.status)); return; }
    const choice = j.choices[0];
    answer.textContent = choice.message.content;
    const meta = el("div", "meta");
    const sdm = choice.sdm;
    if (sdm) {
      const badge = el("span", "badge " + (sdm.high_reliability ? "hr" : "nothr"), sdm.high_reliability ? "HR" : "not HR");
      badge.id = "badge";
      meta.appendChild(badge);
      meta.appendChild(el("span", "", "verified " + sdm.verified + " · p(Yes) = " + sdm.probability.toFixed(3) +
        " · q = " + sdm.q + " · d = " + sdm.d.toFixed(3) + " · α = " + sdm.alpha + " · attempts " + sdm.attempts));
      card.appendChild(meta);
      const list = el("ol", "exemplars");
      for (const n of sdm.nearestSupportMatches) {
        const doc = n.document ? " — " + n.document.slice(0, 120) : "";
        list.appendChild(el("li", "", "exemplar " + n.id + " (label " + n.label + ", distance² " + n.squaredDistance.toFixed(3) + ")" + doc));
      }
      if (sdm.nearestSupportMatches.length) { card.appendChild(el("div", "meta", "Nearest training exemplars:")); card.appendChild(list); }
    } else {
      meta.appendChild(el("span", "", "no verifier loaded: the answer is not verified"));
      card.appendChild(meta);
    }
    card.dataset.done = "1";
  } catch (e) {
    answer.textContent = ""; answer.appendChild(el("span", "error", String(e)));
  } finally { $("send").disabled = false; }
}
$("ask").addEventListener("submit", (ev) => { ev.preventDefault(); const t = $("prompt").value.trim(); if (t) ask(t); });
loadModel();
if (params.get("q")) { $("prompt").value = params.get("q"); ask(params.get("q")); }
</script>
</body>
</html>
)HTML";
}

}  // namespace sdmlm::serve
