// Create and edit a token: every field of the usual "new token" form (name, expiry, quota,
// reset period, count, group, allowed models, allowed IPs, rate limits).
//
// The form does no validation of its own (novalidate): the API is the one authority, and its
// 400 names the offending field in ``param``, which is where the message is shown.

import { api } from "./api.js";
import { showKeys } from "./dialogs.js";
import {
  errorSlot,
  field,
  formError,
  groupDigits,
  guarded,
  h,
  isoToLocalInput,
  localInputToIso,
  plainUsd,
  resetInvalid,
  showFieldErrors,
  splitList,
  toast,
  usdToUnits,
} from "./dom.js";

const EXPIRY_CHOICES = [
  ["never", "Never"],
  ["7", "7 days"],
  ["30", "30 days"],
  ["90", "90 days"],
  ["custom", "Custom date"],
];
const QUOTA_CHOICES = [
  ["unlimited", "Unlimited"],
  ["limited", "Limited to an amount in US$"],
];
const RESET_CHOICES = [
  ["never", "No reset"],
  ["daily", "Daily (00:00 UTC)"],
  ["weekly", "Weekly (Monday 00:00 UTC)"],
  ["monthly", "Monthly (1st, 00:00 UTC)"],
];
const QUOTA_HINT = "500,000 units = US$1.00. The account's balance always applies too.";
const LIMITS = [
  ["rpm_limit", "Requests per minute"],
  ["tpm_limit", "Tokens per minute (prompt + completion)"],
  ["max_concurrency", "Calls in flight at once"],
];
const LIMITS_HINT = "Fixed UTC minutes. Empty: no limit.";

function radios(name, choices, checked) {
  const items = choices.map(([value, label]) => {
    const id = `f-${name}-${value}`;
    return h(
      "span",
      { class: "choice" },
      h("input", { type: "radio", id, name, value, checked: value === checked }),
      h("label", { for: id, text: label }),
    );
  });
  return h("div", { class: "choices" }, items);
}

function group(legend, name, ...children) {
  const title = h("legend", { text: legend });
  return h("fieldset", { class: "group" }, title, children, errorSlot(name));
}

function input(name, props = {}) {
  return h("input", { id: `f-${name}`, name, autocomplete: "off", ...props });
}

function listBox(name, values) {
  return h("textarea", { id: `f-${name}`, name, rows: 2, value: (values || []).join("\n") });
}

// The groups the operator granted the account: a tenant cannot pick any other one.
function groupSelect(groups, current) {
  const choices = current && !groups.includes(current) ? [...groups, current] : groups;
  return h(
    "select",
    { id: "f-group", name: "group" },
    choices.map((name) => h("option", { value: name, text: name, selected: name === current })),
  );
}

async function accountGroups() {
  const account = await api("GET", "/account", { scoped: true });
  return account.groups?.length ? account.groups : ["default"];
}

function buildForm(token, groups) {
  const editing = Boolean(token);
  const limited = editing && token.quota_units !== null;
  const quota = input("quota_usd", {
    inputmode: "decimal",
    placeholder: "e.g. 5.00",
    value: limited ? plainUsd(token.quota_usd) : "",
  });
  const units = h("output", { id: "f-quota-units", for: "f-quota_usd", "aria-live": "polite" });
  const customExpiry = input("expires_at", {
    type: "datetime-local",
    value: editing ? isoToLocalInput(token.expires_at) : "",
  });
  const reset = h(
    "select",
    { id: "f-reset_period", name: "reset_period" },
    RESET_CHOICES.map(([value, label]) =>
      h("option", { value, text: label, selected: (token?.reset_period ?? "never") === value }),
    ),
  );
  const count = input("count", { type: "number", min: 1, max: 100, value: "1" });
  const expiryChoices = editing ? [["keep", "Keep current"], ...EXPIRY_CHOICES] : EXPIRY_CHOICES;
  const currently = editing ? `Currently: ${token.expires_at || "never expires"}` : null;
  const form = h(
    "form",
    { class: "card token-form", id: "token-form", novalidate: true },
    formError("err-form"),
    field("Name", input("name", { maxlength: 64, value: token?.name ?? "" }), errorSlot("name")),
    group(
      "Expiry",
      "expiry",
      radios("expiry", expiryChoices, editing ? "keep" : "never"),
      field("Custom expiry (UTC)", customExpiry),
      currently && h("p", { class: "hint", text: currently }),
    ),
    group(
      "Quota",
      "quota",
      radios("quota", QUOTA_CHOICES, limited ? "limited" : "unlimited"),
      field("Quota (US$)", quota, units),
      h("p", { class: "hint", text: QUOTA_HINT }),
    ),
    field("Quota reset (UTC)", reset, errorSlot("reset_period")),
    editing ? null : field("How many keys (1–100)", count, errorSlot("count")),
    field("Group", groupSelect(groups, token?.group ?? groups[0]), errorSlot("group")),
    field(
      "Allowed models (comma or newline separated; empty allows all)",
      listBox("models", token?.models),
      errorSlot("models"),
    ),
    field(
      "Allowed IPs (CIDR blocks, comma or newline separated; empty allows any)",
      listBox("allow_ips", token?.allow_ips),
      errorSlot("allow_ips"),
    ),
    group(
      "Rate limits",
      "limits",
      LIMITS.map(([name, label]) =>
        field(
          label,
          input(name, { type: "number", min: 1, value: token?.[name] ?? "" }),
          errorSlot(name),
        ),
      ),
      h("p", { class: "hint", text: LIMITS_HINT }),
    ),
    h(
      "div",
      { class: "actions" },
      h("a", { href: "#/tokens", class: "button secondary", text: "Cancel" }),
      h("button", { type: "submit", id: "f-submit", text: editing ? "Save" : "Create" }),
    ),
  );
  form.errorAliases = {
    expires_in_days: "expiry",
    expires_at: "expiry",
    quota_usd: "quota",
    quota_units: "quota",
  };
  const showUnits = () => {
    const text = quota.value.trim();
    const { units: value, error } = usdToUnits(text);
    units.textContent = text ? error || `= ${groupDigits(value)} units` : "";
  };
  // Typing an amount or a date picks the matching choice, as users expect.
  quota.addEventListener("input", () => {
    form.querySelector("#f-quota-limited").checked = true;
    showUnits();
  });
  customExpiry.addEventListener("input", () => {
    form.querySelector("#f-expiry-custom").checked = true;
  });
  showUnits();
  return form;
}

function countValue(text) {
  const trimmed = String(text).trim();
  // Sent as typed when it is not a whole number, so the API names the problem.
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

function expiryFields(form) {
  const choice = form.elements.expiry.value;
  if (choice === "keep") return {};
  if (choice === "never") return { expires_at: null };
  if (choice === "custom") {
    return { expires_at: localInputToIso(form.elements.expires_at.value) ?? "" };
  }
  return { expires_in_days: Number(choice) };
}

function quotaFields(form, token) {
  const limited = form.elements.quota.value === "limited";
  if (!limited) return token && token.quota_units === null ? {} : { quota_units: null };
  const usd = form.elements.quota_usd.value.trim();
  if (token && token.quota_units !== null && usd === plainUsd(token.quota_usd)) return {};
  return { quota_usd: usd };
}

function limitFields(form, token) {
  const fields = {};
  for (const [name] of LIMITS) {
    const text = form.elements[name].value.trim();
    const value = text === "" ? null : countValue(text);
    // An edit sends only what changed; a new token leaves out the limits it does not set.
    if (token ? value !== (token[name] ?? null) : value !== null) fields[name] = value;
  }
  return fields;
}

function body(form, token) {
  const elements = form.elements;
  const fields = {
    name: elements.name.value,
    reset_period: elements.reset_period.value,
    group: elements.group.value,
    models: splitList(elements.models.value),
    allow_ips: splitList(elements.allow_ips.value),
    ...expiryFields(form),
    ...quotaFields(form, token),
    ...limitFields(form, token),
  };
  if (!token) {
    fields.count = countValue(elements.count.value);
    // A new token is unlimited and never expires by default: leave those out rather than null.
    if (fields.quota_units === null) delete fields.quota_units;
    if (fields.expires_at === null) delete fields.expires_at;
  }
  return fields;
}

async function save(form, token) {
  if (token) {
    const path = `/tokens/${encodeURIComponent(token.id)}`;
    await api("PATCH", path, { body: body(form, token), scoped: true });
    toast("Token saved.");
    window.location.hash = "#/tokens";
    return;
  }
  const created = await api("POST", "/tokens", { body: body(form, null), scoped: true });
  const entries = created.data.map((item) => ({
    label: `Key "${item.name}"`,
    key: item.key,
    tokenId: item.id,
  }));
  window.location.hash = "#/tokens";
  const title = entries.length > 1 ? `${entries.length} new keys` : "Your new key";
  showKeys(entries, { title, testable: true });
}

function submitHandler(form, token) {
  return guarded(
    async (event) => {
      event.preventDefault();
      resetInvalid(form);
      showFieldErrors(form, null);
      const button = form.querySelector("#f-submit");
      button.disabled = true;
      try {
        await save(form, token);
      } finally {
        button.disabled = false;
      }
    },
    (error) => showFieldErrors(form, error),
  );
}

export async function renderCreate(view) {
  const form = buildForm(null, await accountGroups());
  form.addEventListener("submit", submitHandler(form, null));
  view.append(h("h1", { text: "Create token" }), form);
}

export async function renderEdit(view, tokenId) {
  const token = await api("GET", `/tokens/${encodeURIComponent(tokenId)}`, { scoped: true });
  const form = buildForm(token, await accountGroups());
  form.addEventListener("submit", submitHandler(form, token));
  const preview = h("span", { class: "mono", text: token.key_preview });
  view.append(h("h1", {}, "Edit token ", preview), form);
}
