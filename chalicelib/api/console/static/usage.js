// The usage dashboard: today and this month (UTC) at a glance (cost, requests, tokens), then
// the chosen period by model and by key, as bars and tables, with CSV export. Everything comes
// from GET /usage (a Query of the account's records, grouped on the server).

import { api } from "./api.js";
import { barList, dailyCostChart, drawFitted } from "./charts.js";
import { alertLine, cell, clear, csv, download, emptyRow, field, guarded, h, table } from "./dom.js";
import { digits, startOfUtcDay, startOfUtcMonth, unitsUsd } from "./format.js";
import { t } from "./i18n.js";
import { tokenOptions } from "./logs.js";

const PERIODS = ["today", "month", "last30"];
const DAY_MS = 86400000;

function periodRange(period, now = Date.now()) {
  if (period === "today") return [startOfUtcDay(now), now + 1];
  if (period === "month") return [startOfUtcMonth(now), now + 1];
  return [startOfUtcDay(now) - 29 * DAY_MS, now + 1];
}

function totals(rows) {
  return rows.reduce(
    (sum, row) => ({
      cost: sum.cost + BigInt(row.cost_units || 0),
      requests: sum.requests + (row.requests || 0),
      tokens: sum.tokens + (row.prompt_tokens || 0) + (row.completion_tokens || 0),
    }),
    { cost: 0n, requests: 0, tokens: 0 },
  );
}

function tile(id, title, sums) {
  return h(
    "section",
    { class: "card tile", id, "aria-label": title },
    h("h2", { text: title }),
    h(
      "dl",
      { class: "figures" },
      h("dt", { text: t("usage.cost") }),
      h("dd", { class: "figure", "data-cost-units": sums.cost.toString(), text: unitsUsd(sums.cost) }),
      h("dt", { text: t("usage.requests") }),
      h("dd", { class: "figure", text: digits(sums.requests) }),
      h("dt", { text: t("usage.tokens") }),
      h("dd", { class: "figure", text: digits(sums.tokens) }),
    ),
  );
}

function breakdown(id, title, rows, labelOf) {
  const sorted = [...rows].sort((a, b) => (BigInt(b.cost_units) > BigInt(a.cost_units) ? 1 : -1));
  const slot = h("div", { class: "chart-slot" });
  const columns = [t("usage.name"), t("usage.requests"), t("usage.tokens"), t("usage.cost")];
  const list = table(`${id}-table`, `${id}-rows`, columns);
  for (const row of sorted) {
    list.body.append(
      h(
        "tr",
        {},
        cell(columns[0], h("span", { class: "token-name", text: labelOf(row.key) })),
        cell(columns[1], digits(row.requests)),
        cell(columns[2], digits(row.prompt_tokens + row.completion_tokens)),
        cell(columns[3], unitsUsd(row.cost_units)),
      ),
    );
  }
  if (!sorted.length) list.body.append(emptyRow(columns.length, t("empty.no_usage")));
  const section = h("section", { class: "breakdown", id }, h("h2", { text: title }), h("div", { class: "card" }, slot), list.element);
  return {
    section,
    draw() {
      const bars = sorted.map((row) => ({ label: labelOf(row.key), value: BigInt(row.cost_units) }));
      drawFitted(slot, () => barList(slot, bars, unitsUsd, `${id}-chart`));
    },
    csvRows: () => sorted.map((row) => [labelOf(row.key), row.key, row.requests, row.prompt_tokens, row.completion_tokens, row.cost_units, row.cost_usd]),
  };
}

export async function render(view) {
  const message = alertLine("usage-error");
  const period = h("select", { id: "usage-period", name: "period" }, PERIODS.map((name) => h("option", { value: name, text: t(`usage.period_${name}`), selected: name === "month" })));
  const tiles = h("div", { class: "tiles", id: "usage-tiles" });
  const body = h("div", { id: "usage-body" });
  const exportButton = h("button", { type: "button", class: "secondary", id: "usage-export", text: t("action.export_csv") });
  const tokens = await tokenOptions();
  const names = new Map(tokens.map((token) => [token.id, token.name]));
  const keyLabel = (id) => names.get(id) || id;
  let current = { model: null, token: null };

  const ask = (group_by, [startMs, endMs]) =>
    api("GET", "/usage", { query: { group_by, start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString() }, scoped: true });

  async function load() {
    message.hide();
    const now = Date.now();
    const month = periodRange("month", now);
    const range = periodRange(period.value, now);
    const [days, byModel, byToken] = await Promise.all([ask("day", month), ask("model", range), ask("token", range)]);
    const today = new Date(now).toISOString().slice(0, 10);
    clear(tiles).append(
      tile("usage-today", t("usage.today"), totals(days.data.filter((row) => row.key === today))),
      tile("usage-month", t("usage.this_month"), totals(days.data)),
    );
    current = {
      model: breakdown("by-model", t("usage.by_model"), byModel.data, (key) => key),
      token: breakdown("by-key", t("usage.by_key"), byToken.data, keyLabel),
    };
    const daily = h("div", { class: "chart-slot", id: "usage-daily" });
    clear(body).append(h("h2", { text: t("usage.daily_this_month") }), daily, current.model.section, current.token.section);
    drawFitted(daily, () => dailyCostChart(daily, days.data, month[0], month[1], "month-chart"));
    current.model.draw();
    current.token.draw();
  }

  exportButton.addEventListener(
    "click",
    guarded(async () => {
      const header = ["group_by", "name", "key", "requests", "prompt_tokens", "completion_tokens", "cost_units", "cost_usd"];
      const rows = [
        ...current.model.csvRows().map((row) => ["model", ...row]),
        ...current.token.csvRows().map((row) => ["token", ...row]),
      ];
      download(`sluice-usage-${period.value}.csv`, csv(header, rows));
    }, message.show),
  );
  period.addEventListener("change", guarded(load, message.show));
  view.append(
    h("h1", { text: t("usage.title") }),
    tiles,
    h("div", { class: "toolbar" }, field(t("usage.period"), period), h("div", { class: "actions" }, exportButton)),
    message.element,
    body,
  );
  await guarded(load, message.show)();
}
