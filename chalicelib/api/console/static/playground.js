// Try a model with an API key (sk-) and show what it answers, the latency and the cost: a
// chat model streams its answer, an image model shows its images, a speech model its audio.
//
// Used by the Playground page (the user pastes a key) and by the key dialog right after a key
// is created or regenerated, the only moments the console holds a key's secret.

import { ApiError, api, call, callBinary, eventData, localError, openStream, session } from "./api.js";
import { clear, field, guarded, h, tokenIdFromKey } from "./dom.js";
import { digits, unitsUsdFine } from "./format.js";
import { errorText, t } from "./i18n.js";

const DEFAULT_PROMPT = () => t("pg.default_prompt");
const DEFAULT_IMAGE_PROMPT = () => t("pg.default_image_prompt");
const DEFAULT_SPEECH = () => t("pg.default_speech");
const IMAGE_SIZES = ["1024x1024", "1024x1536", "1536x1024", "1024x1792", "1792x1024", "512x512", "256x256"];
const MAX_IMAGES = 4;
const VOICES = ["alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"];

// What the Playground can try on a model, from the endpoints GET /v1/models lists for it.
export function modelKind(endpoints) {
  const served = endpoints || [];
  if (served.includes("chat/completions")) return "chat";
  if (served.includes("images/generations")) return "image";
  if (served.includes("audio/speech")) return "speech";
  return "other";
}

const KIND_ORDER = { chat: 0, image: 1, speech: 2, other: 3 };

// The key's models, those the Playground can try first (chat, then images, then speech).
async function listModels(key) {
  const response = await call("GET", "/v1/models", { key });
  const models = (response.data && response.data.data) || [];
  return models
    .filter((model) => model && model.id)
    .map((model, index) => ({ id: model.id, kind: modelKind(model.endpoints), index }))
    .sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || a.index - b.index);
}

const COST_LOOKUPS = 8;
const COST_LOOKUP_WAIT_MS = 250;

// The call's cost: the relay's header when it sends one, else the call's entry in the logs.
async function lookUpCost(response, key) {
  const header = response.headers.get("x-sluice-cost-units");
  if (header !== null && /^\d+$/.test(header.trim())) return BigInt(header.trim());
  const tokenId = tokenIdFromKey(key);
  // The logs are per account: an admin can look only once an account is chosen.
  if (!tokenId || !session.key || (session.isAdmin && !session.accountId)) return null;
  const requestId =
    response.headers.get("x-sluice-request-id") || response.headers.get("x-request-id");
  const query = { token_id: tokenId, limit: 5 };
  // A streamed call is settled just after its last bytes reach the client, so its log entry may
  // not be there yet at [DONE]: look again a few times, briefly (bounded: 8 x 250 ms).
  for (let attempt = 0; attempt < COST_LOOKUPS; attempt += 1) {
    try {
      const page = await api("GET", "/logs", { query, scoped: true });
      const entries = (page && page.data) || [];
      const entry = requestId ? entries.find((item) => item.request_id === requestId) : entries[0];
      if (entry && entry.cost_units !== undefined) return BigInt(entry.cost_units);
    } catch {
      return null;
    }
    await new Promise((resolve) => setTimeout(resolve, COST_LOOKUP_WAIT_MS));
  }
  return null;
}

// The answer is streamed: ``onText`` gets the text so far each time words arrive. The cost is
// known once the stream has ended and the relay has settled the call (see lookUpCost).
export async function sendChat(key, model, prompt, onText = () => {}) {
  const started = performance.now();
  const response = await openStream("POST", "/v1/chat/completions", {
    key,
    body: { model, messages: [{ role: "user", content: prompt }], stream: true },
  });
  let answer = "";
  for await (const data of eventData(response)) {
    if (data === "[DONE]") break;
    let chunk;
    try {
      chunk = JSON.parse(data);
    } catch {
      continue;
    }
    // A stream that broke after it started ends with an OpenAI-shaped error event.
    if (chunk.error) throw new ApiError(502, chunk);
    const choice = (chunk.choices && chunk.choices[0]) || {};
    const piece = (choice.delta && choice.delta.content) || "";
    if (piece) {
      answer += piece;
      onText(answer);
    }
  }
  const ms = Math.round(performance.now() - started);
  const costUnits = await lookUpCost(response, key);
  return { answer, ms, costUnits };
}

// ``n`` images at ``size``; each comes back as base64 (shown from a data: URL) or as a URL
// on the provider's side (offered as a link: the console's CSP loads no foreign images).
export async function sendImage(key, model, prompt, size, n) {
  const started = performance.now();
  const response = await call("POST", "/v1/images/generations", {
    key,
    body: { model, prompt, size, n },
  });
  const items = (response.data && response.data.data) || [];
  const images = items
    .map((item) =>
      item.b64_json ? { src: `data:image/png;base64,${item.b64_json}` } : { url: item.url || null },
    )
    .filter((image) => image.src || image.url);
  const ms = Math.round(performance.now() - started);
  const costUnits = await lookUpCost(response, key);
  return { images, ms, costUnits };
}

// The spoken ``text`` as an audio Blob, in the provider's content type.
export async function sendSpeech(key, model, text, voice) {
  const started = performance.now();
  const response = await callBinary("POST", "/v1/audio/speech", {
    key,
    body: { model, input: text, voice },
  });
  const ms = Math.round(performance.now() - started);
  const costUnits = await lookUpCost(response, key);
  return { audio: response.blob, ms, costUnits };
}

function formatCost(units) {
  if (units === null) return t("pg.cost_unknown");
  return `${unitsUsdFine(units)} (${digits(units)} ${t("money.units")})`;
}

function options(values, chosen) {
  return values.map((value) => h("option", { value, text: value, selected: value === chosen }));
}

// The model picker, the form for the chosen model's kind, the send button and the results.
// ``getKey`` returns the key to use.
export function testPanel(prefix, getKey) {
  const modelSelect = h("select", { id: `${prefix}-model`, name: "model" });
  const prompt = h("textarea", {
    id: `${prefix}-prompt`,
    name: "prompt",
    rows: 2,
    value: DEFAULT_PROMPT(),
  });
  const promptField = field(t("pg.prompt"), prompt);
  const promptLabel = promptField.querySelector("label");
  const size = h("select", { id: `${prefix}-size`, name: "size" }, options(IMAGE_SIZES, "1024x1024"));
  const count = h("input", {
    id: `${prefix}-n`,
    name: "n",
    type: "number",
    min: 1,
    max: MAX_IMAGES,
    step: 1,
    value: "1",
    inputmode: "numeric",
  });
  const voice = h("select", { id: `${prefix}-voice`, name: "voice" }, options(VOICES, "alloy"));
  const imageFields = h(
    "div",
    { class: "pg-image-fields", hidden: true },
    field(t("pg.size"), size),
    field(t("pg.count"), count),
  );
  const speechFields = h("div", { class: "pg-speech-fields", hidden: true }, field(t("pg.voice"), voice));
  const unsupported = h("p", { class: "hint", id: `${prefix}-unsupported`, hidden: true, text: t("pg.unsupported") });
  const status = h("p", {
    class: "form-error",
    id: `${prefix}-error`,
    role: "alert",
    hidden: true,
  });
  const answerTerm = h("dt", { text: t("pg.answer") });
  const answer = h("output", { id: `${prefix}-answer`, class: "answer", for: `${prefix}-prompt` });
  const mediaSlot = h("div", { id: `${prefix}-media`, class: "pg-media" });
  const latency = h("output", { id: `${prefix}-latency` });
  const cost = h("output", { id: `${prefix}-cost` });
  const send = h("button", { type: "button", id: `${prefix}-send`, text: t("pg.send") });
  const results = h(
    "dl",
    { class: "results", id: `${prefix}-results`, hidden: true },
    answerTerm,
    h("dd", {}, answer, mediaSlot),
    h("dt", { text: t("col.latency") }),
    h("dd", {}, latency),
    h("dt", { text: t("col.cost") }),
    h("dd", {}, cost),
  );
  const kinds = new Map();
  let audioUrl = null;

  const kind = () => kinds.get(modelSelect.value) || "chat";
  const defaults = { chat: DEFAULT_PROMPT, image: DEFAULT_IMAGE_PROMPT, speech: DEFAULT_SPEECH };
  const promptLabels = { chat: () => t("pg.prompt"), image: () => t("pg.prompt"), speech: () => t("pg.speech_text") };

  // Show the fields of the chosen model's kind; a prompt left as another kind's default
  // becomes this kind's default.
  function showKind() {
    const chosen = kind();
    const untouched = Object.values(defaults).some((text) => prompt.value === text());
    if (untouched && defaults[chosen]) prompt.value = defaults[chosen]();
    promptField.hidden = chosen === "other";
    promptLabel.firstChild.textContent = (promptLabels[chosen] || promptLabels.chat)();
    imageFields.hidden = chosen !== "image";
    speechFields.hidden = chosen !== "speech";
    unsupported.hidden = chosen !== "other";
    send.disabled = chosen === "other";
    results.hidden = true;
    status.hidden = true;
    clearResults();
  }
  modelSelect.addEventListener("change", showKind);

  function fail(error) {
    status.textContent = errorText(error);
    status.hidden = false;
  }

  async function loadModels() {
    const key = getKey();
    clear(modelSelect);
    kinds.clear();
    if (!key) return;
    status.hidden = true;
    const models = await listModels(key);
    for (const model of models) {
      kinds.set(model.id, model.kind);
      modelSelect.append(h("option", { value: model.id, text: model.id, "data-kind": model.kind }));
    }
    if (!models.length) modelSelect.append(h("option", { value: "", text: t("pg.no_models") }));
    showKind();
  }

  // The last answer goes, and the audio it held is released.
  function clearResults() {
    if (audioUrl) URL.revokeObjectURL(audioUrl);
    audioUrl = null;
    answer.textContent = "";
    clear(mediaSlot);
  }

  function showImages(images) {
    answerTerm.textContent = t("pg.images");
    for (const [index, image] of images.entries()) {
      const alt = t("pg.image_alt", { n: index + 1 });
      if (image.src) mediaSlot.append(h("img", { src: image.src, alt, class: "pg-image" }));
      else {
        mediaSlot.append(
          h("a", { href: image.url, target: "_blank", rel: "noopener noreferrer", text: alt }),
        );
      }
    }
    if (!images.length) answer.textContent = t("pg.no_images");
  }

  function showAudio(audio) {
    answerTerm.textContent = t("pg.audio");
    audioUrl = URL.createObjectURL(audio);
    mediaSlot.append(h("audio", { controls: true, src: audioUrl, id: `${prefix}-audio`, "aria-label": t("pg.audio") }));
  }

  async function sendTest(key) {
    const chosen = kind();
    const asked = prompt.value || (defaults[chosen] || DEFAULT_PROMPT)();
    if (chosen === "image") {
      const n = Number(count.value);
      if (!Number.isInteger(n) || n < 1 || n > MAX_IMAGES) {
        throw localError(t("pg.count_range", { max: MAX_IMAGES }));
      }
      const outcome = await sendImage(key, modelSelect.value, asked, size.value, n);
      showImages(outcome.images);
      return outcome;
    }
    if (chosen === "speech") {
      const outcome = await sendSpeech(key, modelSelect.value, asked, voice.value);
      showAudio(outcome.audio);
      return outcome;
    }
    answerTerm.textContent = t("pg.answer");
    const shown = (text) => {
      answer.textContent = text;
      results.hidden = false;
    };
    const outcome = await sendChat(key, modelSelect.value, asked, shown);
    answer.textContent = outcome.answer;
    return outcome;
  }

  send.addEventListener(
    "click",
    guarded(async () => {
      status.hidden = true;
      results.hidden = true;
      const key = getKey();
      if (!key) throw localError(t("pg.enter_key"));
      if (!modelSelect.value) await loadModels();
      if (kind() === "other") return;
      send.disabled = true;
      clearResults();
      latency.textContent = "…";
      cost.textContent = "…";
      try {
        const outcome = await sendTest(key);
        latency.textContent = `${outcome.ms} ms`;
        cost.textContent = formatCost(outcome.costUnits);
        results.hidden = false;
      } finally {
        send.disabled = false;
      }
    }, fail),
  );

  const element = h(
    "div",
    { class: "test-panel" },
    field(t("col.model"), modelSelect),
    promptField,
    imageFields,
    speechFields,
    unsupported,
    h("div", { class: "actions" }, send),
    status,
    results,
  );
  return { element, loadModels: guarded(loadModels, fail) };
}

export async function render(view) {
  const keyInput = h("input", {
    id: "pg-key",
    name: "key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "sk-…",
  });
  const panel = testPanel("pg", () => keyInput.value.trim());
  keyInput.addEventListener("change", panel.loadModels);
  view.append(
    h("h1", { text: t("nav.playground") }),
    h("p", {
      class: "hint",
      text: t("pg.hint"),
    }),
    h("form", { class: "card", id: "playground", onsubmit: (event) => event.preventDefault() },
      field(t("pg.key"), keyInput),
      panel.element,
    ),
  );
}
