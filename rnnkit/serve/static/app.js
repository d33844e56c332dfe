// rnnkit serve's page. It asks /info what the run offers, shows one form per endpoint, and draws the answers:
// samples as they stream, tags coloured over the words, a translation's attention as a heatmap, a transcription,
// a generated chorale drawn as a piano roll, played with the Web Audio API and offered as a MIDI file.
// Everything is built with DOM calls and textContent, never innerHTML: model output is text, not markup.
"use strict";

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.detail ?? response.statusText}`;
  } catch {
    return `${response.status}: ${response.statusText}`;
  }
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

// JSON lines as they arrive: calls onLine(object) for each complete line.
async function postStream(path, body, onLine) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(await errorOf(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      if (line.trim()) {
        const item = JSON.parse(line);
        if (item.error) throw new Error(item.error);
        onLine(item);
      }
    }
  }
}

function lines(text) {
  return text.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
}

function number(id) {
  return Number($(id).value);
}

function showError(err) {
  $("#output").replaceChildren(el("div", { class: "error", role: "alert" }, err.message || String(err)));
}

// -- colours: one per tag type, the same on every page load -------------------------------------------------

function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) % 360;
  return h;
}

function tagColour(tag) {
  if (tag === "O") return "transparent";
  const type = tag.replace(/^[BIESLU]-/, "");
  return `hsl(${hue(type)}, 75%, 84%)`;
}

// -- the actions --------------------------------------------------------------------------------------------

const ACTIONS = {
  "/sample": {
    title: "Sample",
    form: () => [
      el("div", { class: "row" }, el("input", { type: "text", id: "prime", placeholder: "a prime to continue (may be empty)" })),
      el("div", { class: "row" },
        el("label", {}, "tokens", el("input", { type: "number", id: "length", value: "100", min: "0" })),
        el("label", {}, "temperature", el("input", { type: "number", id: "temperature", value: "0.8", min: "0", step: "0.1" })),
        el("label", {}, "top-k", el("input", { type: "number", id: "top_k", value: "", min: "1", placeholder: "all" })),
        el("label", {}, "seed", el("input", { type: "number", id: "seed", value: "0", min: "0" }))),
    ],
    async run() {
      const body = { prime: $("#prime").value, length: number("#length"), temperature: number("#temperature"), seed: number("#seed"), stream: true };
      if ($("#top_k").value) body.top_k = number("#top_k");
      const box = el("div", { class: "sample", id: "sample" });
      const status = el("p", { class: "muted", id: "status" }, "sampling…");
      $("#output").replaceChildren(box, status);
      await postStream("/sample", body, (item) => {
        if (item.piece !== undefined) box.append(item.piece);
        if (item.done) status.textContent = `${item.tokens} tokens`;
      });
    },
  },

  "/score": {
    title: "Score",
    form: () => [el("textarea", { id: "texts", rows: "4", placeholder: "one sentence per line" }, "the cat sat on the mat\nmat the on sat cat the")],
    async run() {
      const { results } = await post("/score", { texts: lines($("#texts").value) });
      const rows = results.map((r) => el("tr", {}, el("td", {}, r.rank), el("td", {}, r.text), el("td", {}, r.logprob.toFixed(2)), el("td", {}, r.perplexity.toFixed(1))));
      $("#output").replaceChildren(el("table", { id: "scores" }, el("tr", {}, el("th", {}, "rank"), el("th", {}, "text"), el("th", {}, "log-prob (nats)"), el("th", {}, "perplexity")), rows));
    },
  },

  "/predict": {
    title: () => (TASK === "tag" ? "Tag" : "Classify"),
    form: () => [el("textarea", { id: "texts", rows: "4", placeholder: "one text per line" }, TASK === "tag" ? "show me flights from boston to denver" : "a very good film")],
    async run() {
      const { results } = await post("/predict", { texts: lines($("#texts").value) });
      $("#output").replaceChildren(...results.map(TASK === "tag" ? drawTags : drawLabel));
    },
  },

  "/translate": {
    title: "Translate",
    form: () => [
      el("textarea", { id: "texts", rows: "2", placeholder: "one sentence per line" }, "ein mann fährt fahrrad ."),
      el("div", { class: "row" },
        el("label", {}, "beam", el("input", { type: "number", id: "beam", value: "5", min: "1", max: "64" })),
        HAS_ATTENTION ? el("label", {}, el("input", { type: "checkbox", id: "attention", checked: "" }), "attention heatmap") : null),
    ],
    async run() {
      const attention = HAS_ATTENTION && $("#attention").checked;
      const { results } = await post("/translate", { texts: lines($("#texts").value), beam_size: number("#beam"), attention });
      $("#output").replaceChildren(...results.map((r) => el("div", { class: "translation" },
        el("p", {}, el("strong", { class: "target" }, r.translations[0].text), " ", el("span", { class: "muted" }, `log-prob ${r.translations[0].log_prob.toFixed(2)}`)),
        r.attention ? drawHeatmap(r.attention) : null)));
    },
  },

  "/transcribe": {
    title: "Transcribe",
    form: () => [el("input", { type: "file", id: "audio", accept: "audio/*,.wav,.flac,.ogg,.mp3" }),
      el("div", { class: "row" }, el("label", {}, "beam", el("input", { type: "number", id: "beam", value: "1", min: "1", max: "64" })))],
    async run() {
      const file = $("#audio").files[0];
      if (!file) throw new Error("choose an audio file (WAV, FLAC, OGG or MP3) first");
      const form = new FormData();
      form.append("file", file);
      const response = await fetch(`/transcribe?beam_size=${number("#beam")}`, { method: "POST", body: form });
      if (!response.ok) throw new Error(await errorOf(response));
      const result = await response.json();
      $("#output").replaceChildren(el("p", { class: "transcript" }, result.text || "(silence)"), el("p", { class: "muted" }, `${result.seconds.toFixed(2)} s of audio`));
    },
  },

  "/generate": {
    title: "Compose",
    form: () => [
      el("div", { class: "row" }, el("label", {}, "first chord (MIDI pitches)", el("input", { type: "text", id: "chord", value: "60 64 67", style: "width: 160px" }))),
      el("div", { class: "row" },
        el("label", {}, "steps", el("input", { type: "number", id: "steps", value: "32", min: "0" })),
        el("label", {}, "temperature", el("input", { type: "number", id: "temperature", value: "1", min: "0", step: "0.1" })),
        el("label", {}, "seed", el("input", { type: "number", id: "seed", value: "0", min: "0" }))),
    ],
    async run() {
      const chord = $("#chord").value.split(/[\s,]+/).filter(Boolean).map(Number);
      const result = await post("/generate", { chord, steps: number("#steps"), temperature: number("#temperature"), seed: number("#seed"), format: "json" });
      const midi = `data:audio/midi;base64,${result.midi_base64}`;
      $("#output").replaceChildren(
        drawRoll(result.steps),
        el("p", {},
          el("button", { class: "go", id: "play", onclick: () => play(result.steps) }, "Play"), " ",
          el("a", { href: midi, download: "rnnkit-chorale.mid", id: "download" }, "Download MIDI")));
    },
  },
};

// -- drawing the answers -------------------------------------------------------------------------------------

function drawTags(result) {
  const words = result.tokens.map((token, i) => {
    const tag = result.tags[i];
    const conf = result.confidence ? ` (${(100 * result.confidence[i]).toFixed(0)}%)` : "";
    return el("span", { class: "tok", title: `${tag}${conf}`, "data-tag": tag, style: `background: ${tagColour(tag)}` },
      token, tag === "O" ? null : el("sub", {}, tag));
  });
  const intent = result.intent ? el("p", { class: "muted" }, `intent: ${result.intent}`) : null;
  return el("div", { class: "tagged" }, intent, words);
}

function drawLabel(result) {
  const rows = Object.entries(result.probabilities).sort((a, b) => b[1] - a[1]).map(([label, p]) =>
    el("tr", {}, el("td", {}, label), el("td", {}, el("span", { class: "bar", style: `width: ${Math.round(200 * p)}px` })), el("td", {}, p.toFixed(3))));
  const words = result.attention ? el("p", { class: "tagged" }, result.attention.map(([token, w]) =>
    el("span", { class: "tok", title: w.toFixed(3), style: `background: rgba(47, 91, 211, ${Math.min(1, w * 3).toFixed(2)})` }, token))) : null;
  return el("div", { class: "label" }, el("p", {}, el("strong", { class: "predicted" }, result.label)), el("table", {}, rows), words);
}

function drawHeatmap({ source, target, weights }) {
  const head = el("thead", {}, el("tr", {}, el("th", {}), source.map((s) => el("th", {}, s))));
  const body = target.map((t, i) => el("tr", {}, el("th", {}, t), weights[i].map((w) =>
    el("td", { title: w.toFixed(3), style: `background: rgba(47, 91, 211, ${w.toFixed(3)})` }))));
  return el("table", { class: "heat", id: "heatmap" }, head, el("tbody", {}, body));
}

function drawRoll(steps) {
  const pitches = steps.flat();
  const low = Math.min(...pitches, 48) - 2, high = Math.max(...pitches, 72) + 2;
  const w = 12, h = 5;
  const canvas = el("canvas", { id: "roll", width: String(Math.max(steps.length * w, 200)), height: String((high - low) * h) });
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#2f5bd3";
  steps.forEach((chord, t) => chord.forEach((p) => g.fillRect(t * w + 1, (high - p) * h, w - 2, h - 1)));
  return canvas;
}

function play(steps, seconds = 0.4) {
  const audio = new AudioContext();
  const start = audio.currentTime + 0.05;
  steps.forEach((chord, t) => chord.forEach((pitch) => {
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = "triangle";
    osc.frequency.value = 440 * 2 ** ((pitch - 69) / 12);
    gain.gain.setValueAtTime(0.12, start + t * seconds);
    gain.gain.exponentialRampToValueAtTime(0.001, start + (t + 1) * seconds);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + t * seconds);
    osc.stop(start + (t + 1) * seconds);
  }));
}

// -- the page ------------------------------------------------------------------------------------------------

let TASK = null, HAS_ATTENTION = false;

function choose(path) {
  const action = ACTIONS[path];
  for (const button of document.querySelectorAll("nav button")) button.classList.toggle("active", button.dataset.path === path);
  const go = el("button", { class: "go", id: "go" }, "Run");
  go.addEventListener("click", async () => {
    go.disabled = true;
    try {
      await action.run();
    } catch (err) {
      showError(err);
    } finally {
      go.disabled = false;
    }
  });
  $("#panel").replaceChildren(...action.form(), el("div", { class: "row" }, go));
  $("#output").replaceChildren();
}

async function start() {
  let info;
  try {
    const response = await fetch("/info");
    if (!response.ok) throw new Error(await errorOf(response));
    info = await response.json();
  } catch (err) {
    $("#info").textContent = "cannot reach the server";
    return showError(err);
  }
  TASK = info.task;
  HAS_ATTENTION = (info.config.model || {}).attention !== "none";
  $("#info").textContent = `${info.task} run “${info.run}”, ${info.parameters.toLocaleString("en")} parameters, rnnkit ${info.rnnkit}`;
  const paths = Object.keys(ACTIONS).filter((p) => info.endpoints.includes(p)); // this page's order: sample first
  if (paths.length === 0) return showError(new Error(`this ${info.task} run has nothing to try on this page yet: see /info`));
  $("#actions").replaceChildren(...paths.map((path) => {
    const title = typeof ACTIONS[path].title === "function" ? ACTIONS[path].title() : ACTIONS[path].title;
    return el("button", { "data-path": path, onclick: () => choose(path) }, title);
  }));
  choose(paths[0]);
}

start();
