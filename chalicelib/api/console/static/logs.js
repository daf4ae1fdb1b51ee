// The account's calls (GET /logs) with filters (key, model, status, request id, time range),
// paging, a detail view, CSV export, and a cost-per-day chart (GET /usage?group_by=day) asked
// with the very same filters, so the chart always agrees with the table under it.

import { api } from "./api.js";
import { dailyCostChart, drawFitted } from "./charts.js";
import { formDialog } from "./dialogs.js";
import { alertLine, cell, clear, csv, cursorPager, download, emptyRow, field, guarded, h, table } from "./dom.js";
import { digits, time, unitsUsdFine, usdFine } from "./format.js";
import { errorText, t } from "./i18n.js";
import { parseUtc } from "./token_form.js";

const PAGE_SIZE = 25;
const CHART_DAYS = 14;
const DAY_MS = 86400000;
const EXPORT_PAGES = 20;
export const LOG_STATUSES = ["ok", "upstream_error", "deadline_exceeded", "rejected"];

function cost(entry) {
  return entry.cost_usd !== undefined ? usdFine(entry.cost_usd) : unitsUsdFine(entry.cost_units || 0);
}

function detail(entry) {
  const rows = [
    ["log.request_id", entry.request_id],
    ["col.time", time(entry.created_at, "—")],
    ["col.key", `${entry.token_name || ""} (${entry.token_id || ""})`],
    ["col.model", entry.model],
    ["col.status", t(`status.${entry.status}`)],
    ["log.state", entry.state],
    ["log.prompt_tokens", digits(entry.prompt_tokens ?? 0)],
    ["log.completion_tokens", digits(entry.completion_tokens ?? 0)],
    ["col.cost", `${cost(entry)} (${digits(entry.cost_units ?? 0)} ${t("money.units")})`],
    ["log.reserved", digits(entry.reserved_units ?? 0)],
    ["col.latency", entry.latency_ms ? `${entry.latency_ms} ms` : "—"],
    ["log.stream", entry.stream ? t("common.yes") : t("common.no")],
    ["log.estimated", entry.usage_estimated ? t("common.yes") : t("common.no")],
    entry.channel ? ["log.channel", entry.channel] : null,
    entry.detail ? ["log.detail", entry.detail] : null,
  ].filter(Boolean);
  const list = h("dl", { class: "results detail-list", id: "log-detail" });
  for (const [label, value] of rows) list.append(h("dt", { text: t(label) }), h("dd", { text: value ?? "" }));
  const form = h("form", { method: "dialog", class: "log-detail" }, list, h("div", { class: "actions" }));
  formDialog("log-dialog", t("log.detail_title"), form);
}

function logRow(entry) {
  const more = h("button", {
    type: "button",
    class: "secondary",
    text: t("action.details"),
    "aria-label": t("log.details_label", { id: entry.request_id }),
    onclick: () => detail(entry),
  });
  return h(
    "tr",
    { "data-request-id": entry.request_id },
    cell(t("col.time"), time(entry.created_at, "—")),
    cell(t("col.key"), h("span", { class: "token-name", text: entry.token_name || "" })),
    cell(t("col.model"), entry.model || ""),
    cell(t("col.tokens"), `${digits(entry.prompt_tokens ?? 0)} + ${digits(entry.completion_tokens ?? 0)}`),
    cell(t("col.cost"), cost(entry)),
    cell(t("col.status"), h("span", { class: `status status-${entry.status}`, text: t(`status.${entry.status}`) })),
    cell(t("col.latency"), entry.latency_ms ? `${entry.latency_ms} ms` : ""),
    cell(t("col.actions"), more),
  );
}

export async function tokenOptions() {
  try {
    const page = await api("GET", "/tokens", { query: { limit: 100 }, scoped: true });
    return page.data;
  } catch {
    return [];
  }
}

export async function render(view, params) {
  const known = await tokenOptions();
  const token = h("select", { id: "logs-token", name: "token_id" }, h("option", { value: "", text: t("filter.all_keys") }));
  for (const item of known) token.append(h("option", { value: item.id, text: `${item.name} (${item.key_preview})` }));
  token.value = params.get("token_id") || "";
  const model = h("input", { id: "logs-model", name: "model", autocomplete: "off", list: "logs-models" });
  const models = h("datalist", { id: "logs-models" });
  const status = h(
    "select",
    { id: "logs-status", name: "status" },
    h("option", { value: "", text: t("filter.all") }),
    LOG_STATUSES.map((name) => h("option", { value: name, text: t(`status.${name}`) })),
  );
  const requestId = h("input", { id: "logs-request-id", name: "request_id", autocomplete: "off", spellcheck: "false", placeholder: "req_…" });
  const start = h("input", { id: "logs-start", name: "start", inputmode: "numeric", placeholder: "YYYY-MM-DD HH:MM" });
  const end = h("input", { id: "logs-end", name: "end", inputmode: "numeric", placeholder: "YYYY-MM-DD HH:MM" });
  const chartSlot = h("div", { id: "chart-slot", class: "chart-slot" });
  const message = alertLine("logs-error");
  const columns = ["time", "key", "model", "tokens", "cost", "status", "latency", "actions"].map((name) => t(`col.${name}`));
  const logs = table("logs-table", "log-rows", columns);
  const pager = cursorPager("logs", loadLogs, message.show);

  function filters() {
    return {
      token_id: token.value,
      model: model.value.trim(),
      status: status.value,
      request_id: requestId.value.trim(),
      start: parseUtc(start.value),
      end: parseUtc(end.value),
    };
  }

  async function loadLogs() {
    const page = await api("GET", "/logs", { query: { ...filters(), limit: PAGE_SIZE, cursor: pager.cursor() }, scoped: true });
    clear(logs.body);
    for (const entry of page.data) logs.body.append(logRow(entry));
    if (!page.data.length) logs.body.append(emptyRow(columns.length, t("log.none")));
    pager.loaded(page.next_cursor);
  }

  async function loadChart() {
    const chosen = filters();
    const endMs = chosen.end ? Date.parse(chosen.end) : Date.now();
    const startMs = chosen.start ? Date.parse(chosen.start) : endMs - (CHART_DAYS - 1) * DAY_MS;
    const range = { start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() };
    const { request_id: _ignored, start: _s, end: _e, ...same } = chosen;
    const usage = await api("GET", "/usage", { query: { group_by: "day", ...same, ...range }, scoped: true });
    drawFitted(chartSlot, () => dailyCostChart(chartSlot, usage.data || [], startMs, endMs));
  }

  async function loadModels() {
    try {
      const usage = await api("GET", "/usage", { query: { group_by: "model" }, scoped: true });
      clear(models).append(...(usage.data || []).map((row) => h("option", { value: row.key })));
    } catch {
      // Suggestions only: the field still takes any model name.
    }
  }

  async function refresh() {
    message.hide();
    pager.restart();
    // A failed refresh must not leave the old chart or lines beside its error.
    clear(chartSlot);
    clear(logs.body);
    const outcomes = await Promise.allSettled([loadLogs(), loadChart()]);
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw failed.reason;
  }

  async function exportCsv() {
    const rows = [];
    let cursor = null;
    for (let page = 0; page < EXPORT_PAGES; page += 1) {
      const answer = await api("GET", "/logs", { query: { ...filters(), limit: 100, cursor }, scoped: true });
      for (const entry of answer.data) {
        rows.push([
          entry.created_at, entry.request_id, entry.token_name, entry.token_id, entry.model, entry.status,
          entry.prompt_tokens, entry.completion_tokens, entry.cost_units, entry.cost_usd, entry.latency_ms,
        ]);
      }
      cursor = answer.next_cursor;
      if (!cursor) break;
    }
    const header = ["created_at", "request_id", "token_name", "token_id", "model", "status", "prompt_tokens", "completion_tokens", "cost_units", "cost_usd", "latency_ms"];
    download("sluice-logs.csv", csv(header, rows));
  }

  const startError = h("p", { class: "field-error", id: "logs-err-range", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "filters", id: "logs-filters", novalidate: true },
    h(
      "div",
      { class: "toolbar" },
      field(t("col.key"), token),
      field(t("col.model"), model, models),
      field(t("col.status"), status),
      field(t("log.request_id"), requestId),
      field(t("filter.from"), start),
      field(t("filter.to"), end),
    ),
    startError,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "secondary", id: "logs-export", text: t("action.export_csv"), onclick: guarded(exportCsv, message.show) }),
      h("button", { type: "submit", id: "logs-apply", text: t("action.apply") }),
    ),
  );
  form.addEventListener(
    "submit",
    guarded(async (event) => {
      event.preventDefault();
      const bad = [start, end].filter((input) => input.value.trim() && !parseUtc(input.value));
      startError.hidden = !bad.length;
      startError.textContent = bad.length ? t("validate.datetime") : "";
      if (bad.length) return;
      await refresh();
    }, message.show),
  );
  // Filters fold away on a phone, so the calls are on the first screen.
  const panel = h(
    "details",
    { class: "card filter-panel", open: window.matchMedia("(min-width: 761px)").matches },
    h("summary", { text: t("filter.title") }),
    form,
  );

  view.append(
    h("h1", { text: t("log.title") }),
    panel,
    message.element,
    h("h2", { text: t("log.chart_title") }),
    chartSlot,
    h("h2", { text: t("log.calls") }),
    logs.element,
    pager.element,
  );
  loadModels();
  await guarded(refresh, (error) => message.show(errorText(error)))();
}
