// The page of `pipeline serve`: a tab per task that has a loaded model (from GET v1/models), each a form that
// posts to the service's JSON API and draws the answer. Plain DOM, no build step, no external request.
"use strict";

const TOKEN_KEY = "pipeline-token"; // sessionStorage: the token lives as long as the browser tab
const METHOD_NOTES = {
  attention: "Shading: the attention weight of each token (they sum to 1 per sentence).",
  occlusion: "Shading: the drop in the label's probability when the token is hidden "
    + "(red: supports the label, blue: the label is more likely without it).",
};
const modelsByName = new Map();

const byId = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  const box = byId("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// ------------------------------------------------------------------ the API
async function api(path, body) {
  const headers = { Accept: "application/json" };
  const token = byId("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const request = { method: "GET", headers };
  if (body !== undefined) {
    Object.assign(request, { method: "POST", body: JSON.stringify(body) });
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, request);
  } catch (error) {
    throw new Error(`Cannot reach the server (${error.message}). Is \`pipeline serve\` still running?`);
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok) throw new Error(errorMessage(response, payload));
  if (payload === null) throw new Error(`${path}: the server's answer is not JSON`);
  return payload;
}

function errorMessage(response, payload) {
  const error = payload && payload.error;
  const status = `HTTP ${response.status}`;
  if (error && error.message) return `${error.message} (${status}${error.code ? `, ${error.code}` : ""})`;
  if (payload && payload.detail) { // a framework's own error form, should one slip past the service's handler
    return `${typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail)} (${status})`;
  }
  return `${status} ${response.statusText}`.trim();
}

// While a request runs: its button disabled, its results marked busy, the error box empty.
async function submitting(form, results, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  results.setAttribute("aria-busy", "true");
  results.replaceChildren();
  showError("");
  try {
    await work();
  } catch (error) {
    showError(error.message);
  } finally {
    button.disabled = false;
    results.removeAttribute("aria-busy");
  }
}

function lines(textarea) {
  return textarea.value.split(/\r?\n/).filter((line) => line.trim() !== "");
}

// ------------------------------------------------------------------ models and tabs
async function loadModels() {
  showError("");
  let models = null;
  try {
    models = (await api("v1/models")).models;
  } catch (error) {
    showError(error.message);
  }
  modelsByName.clear();
  for (const model of models || []) modelsByName.set(model.name, model);
  for (const select of document.querySelectorAll(".model-select")) {
    const mine = (models || []).filter((model) => model.task === select.dataset.task);
    select.replaceChildren(...mine.map((model) => {
      const option = element("option", "", model.name);
      option.value = model.name;
      option.title = [model.created && `published ${model.created}`,
        model.fingerprint && `config ${model.fingerprint.slice(0, 12)}`].filter(Boolean).join(", ");
      return option;
    }));
    document.querySelector(`[role=tab][data-task="${select.dataset.task}"]`).hidden = mine.length === 0;
  }
  byId("no-models").hidden = models === null || models.length > 0;
  const tabs = visibleTabs();
  const current = tabs.find((tab) => tab.getAttribute("aria-selected") === "true");
  selectTab(current || tabs[0]);
  fillLabels();
}

function visibleTabs() {
  return [...document.querySelectorAll("[role=tab]")].filter((tab) => !tab.hidden);
}

function selectTab(chosen) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const selected = tab === chosen;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    byId(tab.getAttribute("aria-controls")).hidden = !selected;
  }
}

function moveTab(event) { // arrow keys between tabs, as the WAI-ARIA tabs pattern has it
  const tabs = visibleTabs();
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  if (!step) return;
  const next = tabs[(tabs.indexOf(event.target) + step + tabs.length) % tabs.length];
  selectTab(next);
  next.focus();
}

// A generator conditioned on labels needs one (v1/models says `conditioned`), any other refuses one.
function fillLabels() {
  const model = modelsByName.get(byId("generate-model").value);
  const labels = (model && model.conditioned && model.labels) || [];
  const select = byId("generate-label");
  select.replaceChildren(...labels.map((label) => element("option", "", label)));
  for (const node of document.querySelectorAll(".label-choice")) node.hidden = labels.length === 0;
}

// ------------------------------------------------------------------ classify (with the explanation)
async function classify(event) {
  event.preventDefault();
  const results = byId("classify-results");
  await submitting(event.target, results, async () => {
    const texts = lines(byId("classify-texts"));
    if (texts.length === 0) throw new Error("Type at least one sentence.");
    const answer = await api("v1/explain", { model: byId("classify-model").value, texts });
    const methods = new Set(answer.results.map((result) => result.method).filter(Boolean));
    for (const method of methods) results.append(element("p", "note", METHOD_NOTES[method] || method));
    results.append(...answer.results.map(sentenceCard));
  });
}

function sentenceCard(result) {
  const card = element("article", "sentence");
  if (result.error) {
    card.classList.add("failed");
    card.append(element("p", "text", result.text), element("p", "line-error", result.error));
    return card;
  }
  const heading = element("p", "verdict");
  heading.append(element("strong", "label", result.label), ` ${result.probability.toFixed(3)}`);
  if (result.unknown_token_share > 0) {
    heading.append(element("span", "meta", ` · ${Math.round(100 * result.unknown_token_share)}% unknown tokens`));
  }
  card.append(shadedTokens(result), heading, probabilityBars(result.probabilities));
  return card;
}

function shadedTokens(result) {
  const tokens = result.tokens || [];
  const paragraph = element("p", "tokens");
  if (tokens.length === 0) paragraph.textContent = result.text;
  const scale = Math.max(0, ...tokens.map(([, weight]) => Math.abs(weight)));
  for (const [word, weight] of tokens) {
    const strength = scale > 0 ? weight / scale : 0;
    const span = element("span", "token", word);
    const colour = strength >= 0 ? "220, 38, 38" : "37, 99, 235";
    span.style.backgroundColor = `rgba(${colour}, ${Math.abs(strength).toFixed(2)})`;
    if (Math.abs(strength) > 0.6) span.classList.add("strong"); // white on the darkest shades
    span.title = `${result.method || "weight"}: ${weight.toFixed(4)}`;
    span.dataset.weight = weight;
    paragraph.append(span);
  }
  if (result.truncated) paragraph.append(element("span", "meta", ` … +${result.truncated} tokens the model did not see`));
  return paragraph;
}

function probabilityBars(probabilities) {
  const list = element("ul", "bars");
  const ranked = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  for (const [label, probability] of ranked) {
    const row = element("li", "bar-row");
    row.dataset.label = label;
    row.dataset.probability = probability;
    const bar = element("span", "bar");
    bar.setAttribute("aria-hidden", "true");
    const fill = element("span", "fill");
    fill.style.width = `${(100 * probability).toFixed(1)}%`;
    bar.append(fill);
    row.append(element("span", "bar-label", label), bar, element("span", "bar-value", probability.toFixed(3)));
    list.append(row);
  }
  return list;
}

// ------------------------------------------------------------------ generate
async function generate(event) {
  event.preventDefault();
  const results = byId("generate-results");
  await submitting(event.target, results, async () => {
    const seed = Math.floor(Math.random() * 2 ** 31); // new samples at each press; shown so that they can be redone
    const body = {
      model: byId("generate-model").value,
      prompt: byId("generate-prompt").value,
      temperature: Number(byId("generate-temperature").value),
      top_p: Number(byId("generate-top-p").value),
      num: Number(byId("generate-num").value),
      seed,
    };
    if (byId("generate-label").value) body.label = byId("generate-label").value;
    const answer = await api("v1/generate", body);
    const samples = element("ol", "samples");
    samples.append(...answer.samples.map((sample) => element("li", "sample", sample.text)));
    results.append(samples, element("p", "note", `seed ${seed}`));
  });
}

function showSliderValue(input, digits) {
  const output = byId(`${input.id}-value`);
  const update = () => { output.textContent = Number(input.value).toFixed(digits); };
  input.addEventListener("input", update);
  update();
}

// ------------------------------------------------------------------ read
async function read(event) {
  event.preventDefault();
  const results = byId("read-results");
  await submitting(event.target, results, async () => {
    const texts = lines(byId("read-texts"));
    if (texts.length === 0) throw new Error("Type at least one sentence.");
    const body = { model: byId("read-model").value, texts };
    if (byId("read-beam").value) body.beam_size = Number(byId("read-beam").value);
    const answer = await api("v1/read", body);
    const table = element("table", "readings");
    const head = table.createTHead().insertRow();
    for (const title of ["Text", "Reading", "log p"]) head.append(element("th", "", title));
    const rows = table.createTBody();
    for (const result of answer.results) {
      const row = rows.insertRow();
      row.append(element("td", "", result.text));
      if (result.error) {
        const cell = element("td", "line-error", result.error);
        cell.colSpan = 2;
        row.append(cell);
      } else {
        row.append(element("td", "reading", result.reading),
          element("td", "number", result.log_probability.toFixed(2)));
      }
    }
    results.append(table);
  });
}

// ------------------------------------------------------------------ start
function start() {
  const token = byId("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("change", () => {
    if (token.value.trim()) sessionStorage.setItem(TOKEN_KEY, token.value.trim());
    else sessionStorage.removeItem(TOKEN_KEY);
    loadModels();
  });
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", moveTab);
  }
  byId("classify-form").addEventListener("submit", classify);
  byId("generate-form").addEventListener("submit", generate);
  byId("read-form").addEventListener("submit", read);
  byId("generate-model").addEventListener("change", fillLabels);
  showSliderValue(byId("generate-temperature"), 1);
  showSliderValue(byId("generate-top-p"), 2);
  loadModels();
}

start();
