// Create and edit a token: every field of the usual "new token" form (name, expiry, quota,
// reset period, count, group, allowed models, allowed IPs, rate limits).
//
// The form checks what it can before sending, and shows every problem beside its field at
// once, in the console's language; the API stays the authority, and an error it still finds
// lands beside the field its ``param`` names. Fields that do not apply (a date under "Never",
// an amount under "Unlimited") are hidden.

import { api } from "./api.js";
import { showKeys } from "./dialogs.js";
import { errorSlot, field, formError, guarded, h, showApiError, splitList, toast, validator } from "./dom.js";
import { digits, time, usd, usdToUnits } from "./format.js";
import { t } from "./i18n.js";

const EXPIRY_CHOICES = ["never", "7", "30", "90", "custom"];
const QUOTA_CHOICES = ["unlimited", "limited"];
const RESETS = ["never", "daily", "weekly", "monthly"];
const LIMITS = [
  ["rpm_limit", 1000000],
  ["tpm_limit", 1000000000],
  ["max_concurrency", 10000],
];
const AUTO = "auto";
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}))?$/;

function radios(name, choices, checked, labelOf) {
  const items = choices.map((value) => {
    const id = `f-${name}-${value}`;
    return h(
      "span",
      { class: "choice" },
      h("input", { type: "radio", id, name, value, checked: value === checked }),
      h("label", { for: id, text: labelOf(value) }),
    );
  });
  return h("div", { class: "choices", role: "radiogroup" }, items);
}

function group(legend, name, ...children) {
  return h("fieldset", { class: "group" }, h("legend", { text: legend }), children, errorSlot(name));
}

function input(name, props = {}) {
  return h("input", { id: `f-${name}`, name, autocomplete: "off", ...props });
}

function listBox(name, values) {
  return h("textarea", { id: `f-${name}`, name, rows: 2, value: (values || []).join("\n") });
}

// The groups the operator granted the account, each with how many models it serves; a tenant
// cannot pick any other one. "auto" is offered when the API offers it (group_models names it).
function groupSelect(account, current) {
  const served = account.group_models || {};
  const listed = account.groups?.length ? account.groups : ["default"];
  const groups = AUTO in served && !listed.includes(AUTO) ? [...listed, AUTO] : listed;
  const choices = current && !groups.includes(current) ? [...groups, current] : groups;
  return h(
    "select",
    { id: "f-group", name: "group" },
    choices.map((name) => {
      const count = served[name];
      const label = name === AUTO ? t("form.group_auto") : name;
      const text = count === undefined ? label : t("form.group_models", { group: label, n: count });
      return h("option", { value: name, text, selected: name === current });
    }),
  );
}

export function parseUtc(text) {
  const match = DATE_TIME.exec(String(text || "").trim());
  if (!match) return null;
  const [, y, m, d, hh = "00", mm = "00"] = match;
  const iso = `${y}-${m}-${d}T${hh}:${mm}:00Z`;
  const parsed = new Date(iso);
  // Date rolls 2027-02-31 over to March: refuse what does not read back the same.
  if (Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 16) !== iso.slice(0, 16)) return null;
  return iso;
}

function wholeNumber(text, min, max) {
  const trimmed = String(text).trim();
  if (!/^\d+$/.test(trimmed)) return null;
  const value = Number(trimmed);
  return value >= min && value <= max ? value : null;
}

// A CIDR block or a bare address, IPv4 or IPv6 (the API checks the exact rules again).
function plausibleCidr(text) {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(text);
  if (v4) return v4.slice(1, 5).every((part) => Number(part) <= 255) && (!v4[5] || Number(v4[5]) <= 32);
  return /^[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*(?:\/\d{1,3})?$/.test(text);
}

function buildForm(token, account) {
  const editing = Boolean(token);
  const limited = editing && token.quota_units !== null;
  const name = input("name", { maxlength: 64, value: token?.name ?? "", "data-required": "true" });
  const quota = input("quota_usd", { inputmode: "decimal", placeholder: "5.00", value: limited ? usd(token.quota_usd).slice(1).replace(/,/g, "") : "" });
  const units = h("output", { id: "f-quota-units", for: "f-quota_usd", "aria-live": "polite" });
  const customExpiry = input("expires_at", {
    inputmode: "numeric",
    placeholder: "YYYY-MM-DD HH:MM",
    value: editing && token.expires_at ? token.expires_at.slice(0, 16).replace("T", " ") : "",
  });
  const reset = h(
    "select",
    { id: "f-reset_period", name: "reset_period" },
    RESETS.map((value) => h("option", { value, text: t(`form.reset_${value}`), selected: (token?.reset_period ?? "never") === value })),
  );
  const count = input("count", { type: "number", inputmode: "numeric", min: 1, max: 100, value: "1", "data-required": "true" });
  const expiryChoices = editing ? ["keep", ...EXPIRY_CHOICES] : EXPIRY_CHOICES;
  const currently = editing
    ? t("form.expiry_currently", { when: token.expires_at ? time(token.expires_at) : t("time.never_expires") })
    : null;
  const customField = field(t("form.expiry_custom"), customExpiry);
  const quotaField = h("div", { class: "quota-fields" }, field(t("form.quota_amount"), quota, units), h("p", { class: "hint", text: t("form.quota_hint") }));
  const form = h(
    "form",
    { class: "card token-form", id: "token-form", novalidate: true },
    formError("err-form"),
    h("p", { class: "hint", text: t("form.required_note") }),
    field(t("form.name"), name, errorSlot("name")),
    group(
      t("form.expiry"),
      "expiry",
      radios("expiry", expiryChoices, editing ? "keep" : "never", (value) => t(`form.expiry_${value}`)),
      customField,
      currently && h("p", { class: "hint", text: currently }),
    ),
    group(
      t("form.quota"),
      "quota",
      radios("quota", QUOTA_CHOICES, limited ? "limited" : "unlimited", (value) => t(`form.quota_${value}`)),
      quotaField,
    ),
    field(t("form.reset"), reset, errorSlot("reset_period")),
    editing ? null : field(t("form.count"), count, errorSlot("count")),
    field(t("form.group"), groupSelect(account, token?.group ?? account.groups?.[0]), h("p", { class: "hint", text: t("form.group_hint") }), errorSlot("group")),
    field(t("form.models"), listBox("models", token?.models), errorSlot("models")),
    field(t("form.allow_ips"), listBox("allow_ips", token?.allow_ips), errorSlot("allow_ips")),
    group(
      t("form.limits"),
      "limits",
      LIMITS.map(([limit]) => field(t(`form.${limit}`), input(limit, { type: "number", inputmode: "numeric", min: 1, value: token?.[limit] ?? "" }), errorSlot(limit))),
      h("p", { class: "hint", text: t("form.limits_hint") }),
    ),
    h(
      "div",
      { class: "actions" },
      h("a", { href: "#/tokens", class: "button secondary", text: t("action.cancel") }),
      h("button", { type: "submit", id: "f-submit", text: editing ? t("action.save") : t("action.create") }),
    ),
  );
  form.errorAliases = { expires_in_days: "expiry", expires_at: "expiry", quota_usd: "quota", quota_units: "quota" };
  const choice = (groupName) => form.querySelector(`input[name="${groupName}"]:checked`)?.value;
  const showApplicable = () => {
    customField.hidden = choice("expiry") !== "custom";
    quotaField.hidden = choice("quota") !== "limited";
    reset.closest(".field").hidden = choice("quota") !== "limited";
  };
  const showUnits = () => {
    const text = quota.value.trim();
    const { units: value, error } = usdToUnits(text);
    units.textContent = text && !error ? (value === 1n ? t("form.unit_one") : t("form.units", { units: digits(value) })) : "";
  };
  form.addEventListener("change", showApplicable);
  quota.addEventListener("input", showUnits);
  showApplicable();
  showUnits();
  form.validate = validator(form, {
    name: () => (name.value.trim() ? null : t("validate.required")),
    expiry: () => {
      if (choice("expiry") !== "custom") return null;
      const iso = parseUtc(customExpiry.value);
      if (!iso) return t("validate.datetime");
      return Date.parse(iso) <= Date.now() ? t("validate.future") : null;
    },
    quota: () => (choice("quota") === "limited" ? usdToUnits(quota.value).error : null),
    count: () => (editing || wholeNumber(count.value, 1, 100) !== null ? null : t("validate.range", { min: 1, max: 100 })),
    allow_ips: () => {
      const bad = splitList(form.elements.allow_ips.value).filter((item) => !plausibleCidr(item));
      return bad.length ? t("validate.cidr", { items: bad.join(", ") }) : null;
    },
    ...Object.fromEntries(
      LIMITS.map(([limit, max]) => [
        limit,
        () => {
          const text = form.elements[limit].value.trim();
          return !text || wholeNumber(text, 1, max) !== null ? null : t("validate.range", { min: 1, max: digits(max) });
        },
      ]),
    ),
  });
  return form;
}

function expiryFields(form) {
  const chosen = form.elements.expiry.value;
  if (chosen === "keep") return {};
  if (chosen === "never") return { expires_at: null };
  if (chosen === "custom") return { expires_at: parseUtc(form.elements.expires_at.value) };
  return { expires_in_days: Number(chosen) };
}

function quotaFields(form, token) {
  const limited = form.elements.quota.value === "limited";
  if (!limited) return token && token.quota_units === null ? {} : { quota_units: null, reset_period: "never" };
  const { units } = usdToUnits(form.elements.quota_usd.value);
  const fields = { reset_period: form.elements.reset_period.value };
  if (!token || token.quota_units === null || BigInt(token.quota_units) !== units) fields.quota_units = Number(units);
  return fields;
}

function limitFields(form, token) {
  const fields = {};
  for (const [name] of LIMITS) {
    const text = form.elements[name].value.trim();
    const value = text === "" ? null : Number(text);
    // An edit sends only what changed; a new token leaves out the limits it does not set.
    if (token ? value !== (token[name] ?? null) : value !== null) fields[name] = value;
  }
  return fields;
}

function body(form, token) {
  const elements = form.elements;
  const fields = {
    name: elements.name.value.trim(),
    group: elements.group.value,
    models: splitList(elements.models.value),
    allow_ips: splitList(elements.allow_ips.value),
    ...expiryFields(form),
    ...quotaFields(form, token),
    ...limitFields(form, token),
  };
  if (token && fields.reset_period === token.reset_period) delete fields.reset_period;
  if (!token) {
    fields.count = Number(elements.count.value.trim());
    // A new token is unlimited and never expires by default: leave those out rather than null.
    if (fields.quota_units === null) delete fields.quota_units;
    if (fields.expires_at === null) delete fields.expires_at;
  }
  return fields;
}

async function save(form, token) {
  if (token) {
    await api("PATCH", `/tokens/${encodeURIComponent(token.id)}`, { body: body(form, token), scoped: true });
    toast(t("toast.token_saved"));
    window.location.hash = "#/tokens";
    return;
  }
  const created = await api("POST", "/tokens", { body: body(form, null), scoped: true });
  const entries = created.data.map((item) => ({
    label: t("keys.key_named", { name: item.name }),
    name: item.name,
    key: item.key,
    tokenId: item.id,
  }));
  window.location.hash = "#/tokens";
  const title = entries.length > 1 ? t("keys.new_keys", { n: entries.length }) : t("keys.new_key");
  showKeys(entries, { title, testable: true });
}

function submitHandler(form, token) {
  return guarded(
    async (event) => {
      event.preventDefault();
      if (!form.validate()) return;
      const button = form.querySelector("#f-submit");
      button.disabled = true;
      try {
        await save(form, token);
      } finally {
        button.disabled = false;
      }
    },
    (error) => showApiError(form, error),
  );
}

async function account() {
  return api("GET", "/account", { scoped: true });
}

export async function renderCreate(view) {
  const form = buildForm(null, await account());
  form.addEventListener("submit", submitHandler(form, null));
  view.append(h("h1", { text: t("tokens.create") }), form);
  form.querySelector("#f-name").focus();
}

export async function renderEdit(view, tokenId) {
  const token = await api("GET", `/tokens/${encodeURIComponent(tokenId)}`, { scoped: true });
  const form = buildForm(token, await account());
  form.addEventListener("submit", submitHandler(form, token));
  const preview = h("span", { class: "mono", text: token.key_preview });
  view.append(h("h1", {}, t("tokens.edit_title"), " ", preview), form);
}
