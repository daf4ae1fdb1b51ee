// Send one chat completion with an API key (sk-) and show the answer, the latency and the cost.
//
// Used by the Playground page (the user pastes a key) and by the key dialog right after a key
// is created or regenerated, the only moments the console holds a key's secret.

import { ApiError, api, call, eventData, localError, openStream, session } from "./api.js";
import { clear, field, guarded, h, tokenIdFromKey } from "./dom.js";
import { digits, unitsUsdFine } from "./format.js";
import { errorText, t } from "./i18n.js";

const DEFAULT_PROMPT = () => t("pg.default_prompt");

async function listModels(key) {
  const response = await call("GET", "/v1/models", { key });
  const models = (response.data && response.data.data) || [];
  const names = models.map((model) => model.id).filter(Boolean);
  // A chat test cannot use an embedding model; list those last rather than first.
  const chat = names.filter((name) => !/embed/i.test(name));
  return [...chat, ...names.filter((name) => !chat.includes(name))];
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

function formatCost(units) {
  if (units === null) return t("pg.cost_unknown");
  return `${unitsUsdFine(units)} (${digits(units)} ${t("money.units")})`;
}

// The model picker, prompt, send button and results. ``getKey`` returns the key to use.
export function testPanel(prefix, getKey) {
  const modelSelect = h("select", { id: `${prefix}-model`, name: "model" });
  const prompt = h("textarea", {
    id: `${prefix}-prompt`,
    name: "prompt",
    rows: 2,
    value: DEFAULT_PROMPT(),
  });
  const status = h("p", {
    class: "form-error",
    id: `${prefix}-error`,
    role: "alert",
    hidden: true,
  });
  const answer = h("output", { id: `${prefix}-answer`, class: "answer", for: `${prefix}-prompt` });
  const latency = h("output", { id: `${prefix}-latency` });
  const cost = h("output", { id: `${prefix}-cost` });
  const send = h("button", { type: "button", id: `${prefix}-send`, text: t("pg.send") });
  const results = h(
    "dl",
    { class: "results", id: `${prefix}-results`, hidden: true },
    h("dt", { text: t("pg.answer") }),
    h("dd", {}, answer),
    h("dt", { text: t("col.latency") }),
    h("dd", {}, latency),
    h("dt", { text: t("col.cost") }),
    h("dd", {}, cost),
  );

  function fail(error) {
    status.textContent = errorText(error);
    status.hidden = false;
  }

  async function loadModels() {
    const key = getKey();
    clear(modelSelect);
    if (!key) return;
    status.hidden = true;
    const models = await listModels(key);
    for (const model of models) modelSelect.append(h("option", { value: model, text: model }));
    if (!models.length) modelSelect.append(h("option", { value: "", text: t("pg.no_models") }));
  }

  send.addEventListener(
    "click",
    guarded(async () => {
      status.hidden = true;
      results.hidden = true;
      const key = getKey();
      if (!key) throw localError(t("pg.enter_key"));
      if (!modelSelect.value) await loadModels();
      send.disabled = true;
      answer.textContent = "";
      latency.textContent = "…";
      cost.textContent = "…";
      try {
        const shown = (text) => {
          answer.textContent = text;
          results.hidden = false;
        };
        const asked = prompt.value || DEFAULT_PROMPT();
        const outcome = await sendChat(key, modelSelect.value, asked, shown);
        answer.textContent = outcome.answer;
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
    field(t("pg.prompt"), prompt),
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
