// Charts in plain SVG, drawn at the size they are shown (the width of their slot), so labels
// keep a readable size on a phone as on a desktop.

import { h } from "./dom.js";
import { digits, unitsUsd } from "./format.js";
import { t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;

function svg(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

export function dayKeys(startMs, endMs) {
  const start = new Date(startMs);
  const first = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
  const keys = [];
  for (let day = first; day < endMs && keys.length < 400; day += DAY_MS) {
    keys.push(new Date(day).toISOString().slice(0, 10));
  }
  return keys;
}

function widthOf(slot) {
  return Math.max(300, Math.min(1200, Math.round(slot?.clientWidth || 960)));
}

// One bar per UTC day, cost in units; days without calls are drawn as empty slots.
export function dailyCostChart(slot, rows, startMs, endMs, id = "usage-chart") {
  const byDay = new Map(rows.map((row) => [row.key, row]));
  const days = dayKeys(startMs, endMs);
  const costs = days.map((day) => BigInt((byDay.get(day) || {}).cost_units || 0));
  const requests = days.map((day) => (byDay.get(day) || {}).requests || 0);
  const max = costs.reduce((a, b) => (b > a ? b : a), 0n);
  const total = costs.reduce((a, b) => a + b, 0n);
  const totalRequests = requests.reduce((a, b) => a + b, 0);
  const width = widthOf(slot);
  const [height, top, bottom] = [200, 22, 22];
  const slotWidth = width / Math.max(days.length, 1);
  const plot = height - top - bottom;
  const range = `${days[0]} – ${days[days.length - 1]}`;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    class: "chart",
    role: "img",
    id,
    "aria-label": t("chart.daily_label", { range, total: unitsUsd(total) }),
  });
  chart.append(svg("line", { x1: 0, y1: top + plot, x2: width, y2: top + plot, class: "axis" }));
  days.forEach((day, index) => {
    const share = max > 0n ? Number((costs[index] * 1000n) / max) / 1000 : 0;
    const barHeight = Math.max(share * plot, costs[index] > 0n ? 2 : 0);
    const bar = svg("rect", {
      x: (index * slotWidth + slotWidth * 0.15).toFixed(1),
      y: (top + plot - barHeight).toFixed(1),
      width: (slotWidth * 0.7).toFixed(1),
      height: barHeight.toFixed(1),
      class: "bar",
      "data-day": day,
      "data-cost-units": costs[index].toString(),
    });
    bar.append(svg("title", {}, t("chart.bar_title", { day, cost: unitsUsd(costs[index]), n: requests[index] })));
    chart.append(bar);
  });
  const tick = (x, anchor, text) => svg("text", { x, y: height - 5, "text-anchor": anchor, class: "tick" }, text);
  chart.append(tick(0, "start", days[0]), tick(width, "end", days[days.length - 1]));
  chart.append(svg("text", { x: 2, y: 14, class: "tick" }, t("chart.max_per_day", { max: unitsUsd(max) })));
  const caption = t("chart.total", { total: unitsUsd(total), units: digits(total), n: digits(totalRequests), days: days.length });
  return h(
    "figure",
    { class: "card chart-card" },
    chart,
    h("figcaption", { id: `${id}-total`, "data-cost-units": total.toString(), "data-requests": String(totalRequests), text: caption }),
  );
}

// Horizontal bars: one per row (label, value), largest first; ``format`` renders a value.
export function barList(slot, rows, format, id) {
  const width = widthOf(slot);
  const shown = rows.slice(0, 10);
  const rowHeight = 26;
  const labelWidth = Math.min(180, Math.round(width * 0.38));
  const valueWidth = 90;
  const height = Math.max(shown.length, 1) * rowHeight + 4;
  const max = shown.reduce((a, row) => (row.value > a ? row.value : a), 0n);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart bars", role: "img", id, "aria-label": t("chart.bars_label") });
  shown.forEach((row, index) => {
    const y = index * rowHeight + 4;
    const room = width - labelWidth - valueWidth - 8;
    const share = max > 0n ? Number((row.value * 1000n) / max) / 1000 : 0;
    const label = row.label.length > 24 ? `${row.label.slice(0, 23)}…` : row.label;
    chart.append(svg("text", { x: 0, y: y + 15, class: "tick label" }, label));
    chart.append(svg("rect", { x: labelWidth, y: y + 3, width: Math.max(share * room, row.value > 0n ? 2 : 0).toFixed(1), height: rowHeight - 10, class: "bar" }));
    chart.append(svg("text", { x: width, y: y + 15, "text-anchor": "end", class: "tick" }, format(row.value)));
  });
  if (!shown.length) chart.append(svg("text", { x: 0, y: 18, class: "tick" }, t("empty.no_usage")));
  return chart;
}

// Draw into ``slot`` now and again whenever the window changes size (a phone turned sideways),
// so labels keep their size; the listener goes away with the slot.
export function drawFitted(slot, draw) {
  let width = slot.clientWidth;
  const redraw = () => {
    if (!slot.isConnected) {
      window.removeEventListener("resize", redraw);
      return;
    }
    if (slot.clientWidth === width) return;
    width = slot.clientWidth;
    slot.replaceChildren(draw());
  };
  slot.replaceChildren(draw());
  window.addEventListener("resize", redraw);
}
