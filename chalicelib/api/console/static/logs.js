// The account's calls (GET /logs) with filters and paging, and a cost-per-day chart drawn in
// plain SVG from GET /usage?group_by=day.

import { api } from "./api.js";
import {
  cell,
  clear,
  cursorPager,
  field,
  formatTime,
  formError,
  groupDigits,
  guarded,
  h,
  localInputToIso,
  table,
  trimUsd,
  unitsToUsd,
} from "./dom.js";

const PAGE_SIZE = 25;
const CHART_DAYS = 14;
const DAY_MS = 86400000;
const SVG = "http://www.w3.org/2000/svg";
const COLUMNS = ["Time", "Key", "Model", "Tokens", "Cost", "Status", "Latency"];

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

function dayKeys(startMs, endMs) {
  const start = new Date(startMs);
  const first = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
  const keys = [];
  for (let day = first; day <= endMs && keys.length < 400; day += DAY_MS) {
    keys.push(new Date(day).toISOString().slice(0, 10));
  }
  return keys;
}

// One bar per UTC day, cost in units; days without calls are drawn as empty slots.
export function drawChart(rows, startMs, endMs) {
  const byDay = new Map(rows.map((row) => [row.key, row]));
  const days = dayKeys(startMs, endMs);
  const costs = days.map((day) => BigInt((byDay.get(day) || {}).cost_units || 0));
  const requests = days.map((day) => (byDay.get(day) || {}).requests || 0);
  const max = costs.reduce((a, b) => (b > a ? b : a), 0n);
  const total = costs.reduce((a, b) => a + b, 0n);
  const [width, height, top, bottom] = [960, 220, 10, 24];
  const slot = width / Math.max(days.length, 1);
  const plot = height - top - bottom;
  const range = `${days[0]} to ${days[days.length - 1]}`;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    id: "usage-chart",
    "aria-label": `Cost per day, ${range}: ${unitsToUsd(total)} in total`,
  });
  chart.append(svg("line", { x1: 0, y1: top + plot, x2: width, y2: top + plot, class: "axis" }));
  days.forEach((day, index) => {
    const share = max > 0n ? Number((costs[index] * 1000n) / max) / 1000 : 0;
    const barHeight = Math.max(share * plot, costs[index] > 0n ? 2 : 0);
    const bar = svg("rect", {
      x: (index * slot + slot * 0.15).toFixed(1),
      y: (top + plot - barHeight).toFixed(1),
      width: (slot * 0.7).toFixed(1),
      height: barHeight.toFixed(1),
      class: "bar",
      "data-day": day,
      "data-cost-units": costs[index].toString(),
    });
    const summary = `${day}: ${unitsToUsd(costs[index])}, ${requests[index]} requests`;
    bar.append(svg("title", {}, summary));
    chart.append(bar);
  });
  const tick = (x, anchor, text) =>
    svg("text", { x, y: height - 6, "text-anchor": anchor, class: "tick" }, text);
  chart.append(tick(0, "start", days[0]), tick(width, "end", days[days.length - 1]));
  chart.append(svg("text", { x: 4, y: top + 10, class: "tick" }, `max ${unitsToUsd(max)}/day`));
  const units = groupDigits(total);
  const caption = `Total ${unitsToUsd(total)} (${units} units) over ${days.length} days`;
  return h(
    "figure",
    { class: "card chart-card" },
    chart,
    h("figcaption", { id: "usage-total", text: caption }),
  );
}

function logRow(entry) {
  const hasLatency = entry.latency_ms !== undefined && entry.latency_ms !== null;
  const cost = entry.cost_usd ?? unitsToUsd(entry.cost_units || 0).slice(1);
  return h(
    "tr",
    { "data-request-id": entry.request_id },
    cell("Time", formatTime(entry.created_at, "—")),
    cell(
      "Key",
      h("span", { class: "token-name", text: entry.token_name || "" }),
      h("br"),
      h("small", { class: "mono", text: entry.token_id || "" }),
    ),
    cell("Model", entry.model || ""),
    cell("Tokens", `${entry.prompt_tokens ?? 0} + ${entry.completion_tokens ?? 0}`),
    cell("Cost", trimUsd(cost)),
    cell("Status", h("span", { class: `status status-${entry.status}`, text: entry.status })),
    cell("Latency", hasLatency ? `${entry.latency_ms} ms` : ""),
  );
}

async function tokenOptions() {
  try {
    const page = await api("GET", "/tokens", { query: { limit: 100 }, scoped: true });
    return page.data.map((token) =>
      h("option", { value: token.id, text: `${token.name} (${token.key_preview})` }),
    );
  } catch {
    return [];
  }
}

export async function render(view, params) {
  const token = h(
    "select",
    { id: "logs-token", name: "token_id" },
    h("option", { value: "", text: "All keys" }),
  );
  token.append(...(await tokenOptions()));
  token.value = params.get("token_id") || "";
  const model = h("input", { id: "logs-model", name: "model", autocomplete: "off" });
  const start = h("input", { id: "logs-start", name: "start", type: "datetime-local" });
  const end = h("input", { id: "logs-end", name: "end", type: "datetime-local" });
  const chartSlot = h("div", { id: "chart-slot" });
  const message = formError("logs-error");
  const report = (error) => {
    message.textContent = error.message;
    message.hidden = false;
  };
  const logs = table("logs-table", "log-rows", COLUMNS);
  const pager = cursorPager("logs", loadLogs, report);

  function filters() {
    return {
      token_id: token.value,
      model: model.value.trim(),
      start: localInputToIso(start.value),
      end: localInputToIso(end.value),
    };
  }

  async function loadLogs() {
    const page = await api("GET", "/logs", {
      query: { ...filters(), limit: PAGE_SIZE, cursor: pager.cursor() },
      scoped: true,
    });
    clear(logs.body);
    for (const entry of page.data) logs.body.append(logRow(entry));
    if (!page.data.length) {
      const empty = h("td", { colspan: COLUMNS.length, class: "empty", text: "No calls found." });
      logs.body.append(h("tr", {}, empty));
    }
    pager.loaded(page.next_cursor);
  }

  async function loadChart() {
    const chosen = filters();
    const endMs = chosen.end ? Date.parse(chosen.end) : Date.now();
    const startMs = chosen.start ? Date.parse(chosen.start) : endMs - (CHART_DAYS - 1) * DAY_MS;
    const range = { start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() };
    const usage = await api("GET", "/usage", {
      query: { group_by: "day", ...range },
      scoped: true,
    });
    clear(chartSlot).append(drawChart(usage.data || [], startMs, endMs));
  }

  async function refresh() {
    message.hidden = true;
    pager.restart();
    await Promise.all([loadLogs(), loadChart()]);
  }

  const form = h(
    "form",
    { class: "card toolbar filters", id: "logs-filters", novalidate: true },
    field("Key", token),
    field("Model", model),
    field("From (UTC)", start),
    field("To (UTC)", end),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", id: "logs-apply", text: "Apply" }),
    ),
  );
  form.addEventListener(
    "submit",
    guarded(async (event) => {
      event.preventDefault();
      await refresh();
    }, report),
  );

  view.append(
    h("h1", { text: "Logs" }),
    form,
    message,
    h("h2", { text: "Cost per day (UTC)" }),
    chartSlot,
    h("h2", { text: "Calls" }),
    logs.element,
    pager.element,
  );
  await guarded(refresh, report)();
}
