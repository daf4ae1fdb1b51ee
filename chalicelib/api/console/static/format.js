// One way to show each kind of value, on every page and in both languages:
//  - time: UTC, 24 h, ISO-like ("2027-01-15 10:00 UTC"), with a relative hint ("in 45 days");
//  - money: exact decimal arithmetic (BigInt, never floats); balances with two decimals,
//    per-call costs with up to six (at least two);
//  - counts: digit groups.

import { lang, t } from "./i18n.js";

export const UNITS_PER_USD = 500000n;
const MICRO = 1000000n;

// "12.345678" (the API's usd strings) -> micro-dollars as BigInt.
function toMicro(decimal) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(decimal ?? "").trim());
  if (!match) return null;
  const fraction = (match[3] || "").padEnd(6, "0").slice(0, 6);
  const value = BigInt(match[2]) * MICRO + BigInt(fraction);
  return match[1] ? -value : value;
}

function microText(micro, digits) {
  const negative = micro < 0n;
  const abs = negative ? -micro : micro;
  const whole = abs / MICRO;
  let fraction = (abs % MICRO).toString().padStart(6, "0").slice(0, digits);
  if (digits > 2) fraction = fraction.replace(/0+$/, "").padEnd(2, "0");
  const grouped = BigInt(whole).toLocaleString("en-US");
  return `${negative ? "-" : ""}$${grouped}.${fraction}`;
}

// A balance or total: two decimals, cut (never rounded up: a balance is never overstated).
export function usd(decimal) {
  const micro = toMicro(decimal);
  return micro === null ? "" : microText(micro, 2);
}

// A per-call cost or a price: up to six decimals, at least two.
export function usdFine(decimal) {
  const micro = toMicro(decimal);
  return micro === null ? "" : microText(micro, 6);
}

export function unitsToMicro(units) {
  return (BigInt(units) * MICRO) / UNITS_PER_USD;
}

export function unitsUsd(units) {
  return microText(unitsToMicro(units), 2);
}

export function unitsUsdFine(units) {
  return microText(unitsToMicro(units), 6);
}

// The amount field's text -> units, or a translated error. "1,50" is refused with a hint
// rather than read as 150 or 1.
export function usdToUnits(text) {
  const raw = String(text ?? "").trim();
  if (/^\d+,\d+$/.test(raw)) return { units: null, error: t("validate.decimal_comma") };
  const match = /^(\d{1,10})(?:\.(\d{1,12}))?$/.exec(raw);
  if (!match) return { units: null, error: t("validate.amount") };
  const fraction = (match[2] || "").padEnd(12, "0");
  const pico = BigInt(match[1]) * 10n ** 12n + BigInt(fraction);
  const scaled = pico * UNITS_PER_USD;
  if (scaled % 10n ** 12n !== 0n) return { units: null, error: t("validate.finer_than_unit") };
  return { units: scaled / 10n ** 12n, error: null };
}

export function digits(value) {
  return BigInt(value ?? 0).toLocaleString("en-US");
}

// "2027-01-15T10:00:00Z" -> "2027-01-15 10:00 UTC".
export function time(iso, empty = null) {
  if (!iso) return empty ?? t("time.never");
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return match ? `${match[1]} ${match[2]} UTC` : iso;
}

const UNITS = [
  ["year", 365 * 86400],
  ["month", 30 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

// "in 45 days", "3 hours ago" (45 天后, 3 小时前), in the console's language.
export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  // Whole seconds toward zero: a key that expires in 29 d 23 h 59 m 59.7 s is "in 29 days", never
  // rounded up to 30 days and so shown as "next month".
  const seconds = Math.trunc((Date.parse(iso) - now) / 1000);
  const format = new Intl.RelativeTimeFormat(lang(), { numeric: "auto" });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return format.format(Math.trunc(seconds / size), unit);
  }
  return format.format(0, "minute");
}

// A time cell: the date as text, the relative hint beside it.
export function timeWithHint(iso, empty = null) {
  if (!iso) return { text: time(iso, empty), hint: "" };
  return { text: time(iso), hint: relative(iso) };
}

// <input type="datetime-local"> values are read as UTC (the labels say so).
export function localInputToIso(value) {
  if (!value) return null;
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

export function isoToLocalInput(iso) {
  return iso ? iso.slice(0, 16) : "";
}

export function startOfUtcDay(ms = Date.now()) {
  const day = new Date(ms);
  return Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate());
}

export function startOfUtcMonth(ms = Date.now()) {
  const day = new Date(ms);
  return Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), 1);
}
