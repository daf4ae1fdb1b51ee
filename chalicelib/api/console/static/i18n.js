// The console's words in English and Simplified Chinese. Every visible string goes through
// t(key); the language follows the browser (navigator.languages) until the user picks one in
// the header, which is remembered in localStorage. <html lang> always says which is shown.
//
// Server error messages stay English (they are the API's contract); the console shows its own
// words for the error codes it knows (``errorText``).

import { STRINGS } from "./strings.js";

const LANG_ITEM = "sluice.console.lang";
export const LANGUAGES = [
  ["en", "English"],
  ["zh-CN", "简体中文"],
];

// "zh", "zh-CN", "zh-Hans-SG"... read Simplified Chinese; everything else English.
export function pickLanguage(preferred) {
  for (const tag of preferred || []) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

function stored() {
  try {
    const value = localStorage.getItem(LANG_ITEM);
    return LANGUAGES.some(([code]) => code === value) ? value : null;
  } catch {
    return null;
  }
}

let current =
  stored() || pickLanguage(navigator.languages?.length ? navigator.languages : [navigator.language]);
document.documentElement.lang = current;

export function lang() {
  return current;
}

export function setLang(code) {
  current = LANGUAGES.some(([known]) => known === code) ? code : "en";
  try {
    localStorage.setItem(LANG_ITEM, current);
  } catch {
    // Storage refused (private mode): the choice lasts for this page only.
  }
  document.documentElement.lang = current;
}

export function has(key) {
  return key in STRINGS.en;
}

// "{name}" placeholders are filled from ``params``; a missing key shows itself, so it is noticed.
export function t(key, params = {}) {
  const text = STRINGS[current]?.[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) =>
    params[name] === undefined ? match : String(params[name]),
  );
}

// The static markup of index.html: data-i18n sets the text, data-i18n-label the aria-label.
export function translateStatic(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nLabel));
  }
  document.title = t("app.title");
}

// The console's words for an API error: known codes are translated, others keep the API's
// (English) message, and a failure to reach the API at all has its own words.
export function errorText(error) {
  if (!error) return "";
  if (error.local) return error.message;
  if (error.status === 0) return t("error.unreachable");
  if (error.code && has(`error.${error.code}`)) return t(`error.${error.code}`);
  return error.message || t("error.http", { status: error.status });
}
