// Admin only: create accounts, credit them (with a note, listed again later), grant groups,
// disable/enable them, and choose the account whose tokens and logs the other pages manage
// (sent to the API as ?account_id=).

import { api, session } from "./api.js";
import { confirmAction, formDialog, showKeys } from "./dialogs.js";
import {
  alertLine,
  cell,
  clear,
  cursorPager,
  emptyRow,
  errorSlot,
  field,
  formError,
  guarded,
  h,
  splitList,
  submitForm,
  table,
  toast,
} from "./dom.js";
import { digits, time, usd, usdToUnits } from "./format.js";
import { t } from "./i18n.js";

const PAGE_SIZE = 20;

function balance(account) {
  if (account.quota_units === null) return t("money.unlimited");
  return t("accounts.balance", { left: usd(account.remaining_usd), total: usd(account.quota_usd) });
}

function liveUnits(input, output) {
  input.addEventListener("input", () => {
    const { units, error } = usdToUnits(input.value);
    output.textContent = input.value.trim() && !error ? (units === 1n ? t("form.unit_one") : t("form.units", { units: digits(units) })) : "";
  });
}

// A picker shown above the account-scoped pages when the admin key is in use.
export async function accountPicker(onChange) {
  const select = h("select", { id: "account-picker", name: "account_id" }, h("option", { value: "", text: t("accounts.choose") }));
  const page = await api("GET", "/admin/accounts", { query: { limit: 100 } });
  for (const account of page.data) {
    select.append(h("option", { value: account.id, text: `${account.name} (${account.id})`, selected: account.id === session.accountId }));
  }
  select.addEventListener("change", () => {
    session.selectAccount(select.value);
    onChange();
  });
  return h("div", { class: "toolbar account-bar" }, field(t("accounts.managing"), select));
}

function creditDialog(account, done) {
  const amount = h("input", { id: "credit-amount", name: "quota_usd", inputmode: "decimal", autocomplete: "off", "data-required": "true" });
  const units = h("output", { id: "credit-units", for: "credit-amount" });
  const note = h("input", { id: "credit-note", name: "note", maxlength: 256, autocomplete: "off" });
  const form = h(
    "form",
    { class: "dialog-form", novalidate: true },
    formError("credit-err-form"),
    field(t("accounts.amount"), amount, units),
    errorSlot("quota_usd", "credit-"),
    field(t("accounts.note"), note),
    errorSlot("note", "credit-"),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "credit-submit", text: t("accounts.credit") })),
  );
  form.errorAliases = { quota_units: "quota_usd" };
  liveUnits(amount, units);
  const dialog = formDialog("credit-dialog", t("accounts.credit_title", { name: account.name }), form);
  submitForm(
    form,
    {
      quota_usd: () => {
        const { units: value, error } = usdToUnits(amount.value);
        if (error) return error;
        return value > 0n ? null : t("validate.positive");
      },
    },
    async () => {
      await api("POST", `/admin/accounts/${encodeURIComponent(account.id)}/credit`, { body: { quota_usd: amount.value.trim(), note: note.value } });
      dialog.close();
      toast(t("toast.credited", { name: account.name }));
      await done();
    },
  );
}

async function creditsDialog(account) {
  const answer = await api("GET", `/admin/accounts/${encodeURIComponent(account.id)}/credits`);
  const columns = [t("col.time"), t("accounts.amount"), t("accounts.note")];
  const list = table("credits-table", "credit-rows", columns);
  for (const credit of answer.data) {
    list.body.append(h("tr", {}, cell(columns[0], time(credit.at)), cell(columns[1], usd(credit.usd)), cell(columns[2], h("span", { class: "note", text: credit.note || "—" }))));
  }
  if (!answer.data.length) list.body.append(emptyRow(columns.length, t("accounts.no_credits")));
  const form = h("form", { method: "dialog" }, list.element, h("div", { class: "actions" }));
  formDialog("credits-dialog", t("accounts.credits_title", { name: account.name }), form);
}

function groupsDialog(account, done) {
  const groups = h("input", { id: "groups-input", name: "groups", autocomplete: "off", value: account.groups.join(", "), "data-required": "true" });
  const form = h(
    "form",
    { class: "dialog-form", novalidate: true },
    formError("groups-err-form"),
    field(t("accounts.groups_field"), groups, h("p", { class: "hint", text: t("accounts.groups_hint") })),
    errorSlot("groups", "groups-"),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "groups-submit", text: t("action.save") })),
  );
  const dialog = formDialog("groups-dialog", t("accounts.groups_title", { name: account.name }), form);
  submitForm(
    form,
    {
      groups: () => {
        const names = splitList(groups.value);
        if (!names.length) return t("validate.required");
        return names.every((name) => /^[A-Za-z0-9_.-]{1,64}$/.test(name)) ? null : t("validate.group_name");
      },
    },
    async () => {
      await api("PATCH", `/admin/accounts/${encodeURIComponent(account.id)}`, { body: { groups: splitList(groups.value) } });
      dialog.close();
      toast(t("toast.saved"));
      await done();
    },
  );
}

function createForm(done) {
  const quota = h("input", { id: "acct-quota_usd", name: "quota_usd", inputmode: "decimal", autocomplete: "off", placeholder: "10.00" });
  const units = h("output", { id: "acct-quota-units", for: "acct-quota_usd" });
  const unlimited = h("input", { id: "acct-unlimited", name: "unlimited", type: "checkbox" });
  const name = h("input", { id: "acct-name", name: "name", maxlength: 64, autocomplete: "off", "data-required": "true" });
  const quotaField = field(t("accounts.starting_balance"), quota, units);
  const form = h(
    "form",
    { class: "card", id: "account-form", novalidate: true },
    h("h2", { text: t("accounts.new") }),
    formError("acct-err-form"),
    field(t("form.name"), name),
    errorSlot("name", "acct-"),
    h("div", { class: "choice" }, unlimited, h("label", { for: "acct-unlimited", text: t("accounts.unlimited") })),
    errorSlot("unlimited", "acct-"),
    quotaField,
    errorSlot("quota_usd", "acct-"),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "acct-submit", text: t("accounts.create") })),
  );
  form.errorAliases = { quota_units: "quota_usd" };
  unlimited.addEventListener("change", () => {
    quotaField.hidden = unlimited.checked;
  });
  liveUnits(quota, units);
  submitForm(
    form,
    {
      name: () => (name.value.trim() ? null : t("validate.required")),
      quota_usd: () => (unlimited.checked || !quota.value.trim() ? null : usdToUnits(quota.value).error),
    },
    async () => {
      const body = { name: name.value.trim() };
      if (unlimited.checked) body.unlimited = true;
      else if (quota.value.trim()) body.quota_usd = quota.value.trim();
      const created = await api("POST", "/admin/accounts", { body });
      form.reset();
      units.textContent = "";
      quotaField.hidden = false;
      await done();
      const owner = created.account.name;
      const token = created.default_token;
      showKeys(
        [
          { label: t("accounts.management_key_of", { name: owner }), name: `${owner} (mk)`, key: created.management_key },
          { label: t("accounts.default_key_of", { name: owner }), name: `${owner} (sk)`, key: token.key, tokenId: token.id },
        ],
        { title: t("accounts.new_keys"), testable: true },
      );
    },
  );
  return form;
}

export async function render(view) {
  const message = alertLine();
  const columns = ["col.name", "col.id", "col.status", "col.groups", "accounts.balance_col", "accounts.used", "col.actions"].map((key) => t(key));
  const accounts = table("accounts-table", "account-rows", columns);
  const pager = cursorPager("accounts", load, message.show);

  function row(account) {
    const enabled = account.status === "enabled";
    const path = `/admin/accounts/${encodeURIComponent(account.id)}`;
    const toggle = guarded(async () => {
      if (enabled && !(await confirmAction(t("accounts.disable_question", { name: account.name }), t("action.disable")))) return;
      await api("PATCH", path, { body: { status: enabled ? "disabled" : "enabled" } });
      await load();
    }, message.show);
    const button = (text, label, className, onclick) => h("button", { type: "button", class: className, text, "aria-label": label, onclick });
    const actions = h(
      "div",
      { class: "row-actions" },
      h("a", { class: "button secondary", href: `#/tokens?account_id=${encodeURIComponent(account.id)}`, text: t("nav.tokens"), "aria-label": t("accounts.tokens_label", { name: account.name }) }),
      button(t("accounts.credit"), t("accounts.credit_title", { name: account.name }), "secondary", () => creditDialog(account, load)),
      button(t("accounts.credits"), t("accounts.credits_title", { name: account.name }), "secondary", guarded(() => creditsDialog(account), message.show)),
      button(t("col.groups"), t("accounts.groups_title", { name: account.name }), "secondary", () => groupsDialog(account, load)),
      button(enabled ? t("action.disable") : t("action.enable"), t("accounts.toggle_label", { verb: enabled ? t("action.disable") : t("action.enable"), name: account.name }), enabled ? "danger" : "secondary", toggle),
    );
    return h(
      "tr",
      { "data-account-id": account.id },
      cell(columns[0], h("span", { class: "account-name", text: account.name })),
      cell(columns[1], h("span", { class: "mono", text: account.id })),
      cell(columns[2], h("span", { class: `status status-${account.status}`, text: t(`status.${account.status}`) })),
      cell(columns[3], account.groups.join(", ")),
      cell(columns[4], h("span", { class: "balance", text: balance(account) })),
      cell(columns[5], usd(account.used_usd)),
      cell(columns[6], actions),
    );
  }

  async function load() {
    const page = await api("GET", "/admin/accounts", { query: { limit: PAGE_SIZE, cursor: pager.cursor() } });
    clear(accounts.body);
    for (const account of page.data) accounts.body.append(row(account));
    if (!page.data.length) accounts.body.append(emptyRow(columns.length, t("accounts.none")));
    pager.loaded(page.next_cursor);
  }

  view.append(h("h1", { text: t("accounts.title") }), createForm(load), message.element, accounts.element, pager.element);
  await load();
}
