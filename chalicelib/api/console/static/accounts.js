// Admin only: create accounts, credit them, disable/enable them, and choose the account whose
// tokens and logs the other pages manage (sent to the API as ?account_id=).

import { api, session } from "./api.js";
import { confirmAction, showKeys } from "./dialogs.js";
import {
  cell,
  clear,
  cursorPager,
  errorSlot,
  field,
  formError,
  groupDigits,
  guarded,
  h,
  resetInvalid,
  showFieldErrors,
  table,
  toast,
  trimUsd,
  usdToUnits,
} from "./dom.js";

const PAGE_SIZE = 20;

function balance(account) {
  if (account.quota_units === null) return "unlimited";
  return `${trimUsd(account.remaining_usd)} left of ${trimUsd(account.quota_usd)}`;
}

function liveUnits(input, output) {
  input.addEventListener("input", () => {
    const { units, error } = usdToUnits(input.value);
    output.textContent = input.value.trim() ? error || `= ${groupDigits(units)} units` : "";
  });
}

// A picker shown above the account-scoped pages when the admin key is in use.
export async function accountPicker(onChange) {
  const select = h(
    "select",
    { id: "account-picker", name: "account_id" },
    h("option", { value: "", text: "Choose an account…" }),
  );
  const page = await api("GET", "/admin/accounts", { query: { limit: 100 } });
  for (const account of page.data) {
    const text = `${account.name} (${account.id})`;
    select.append(
      h("option", { value: account.id, text, selected: account.id === session.accountId }),
    );
  }
  select.addEventListener("change", () => {
    session.selectAccount(select.value);
    onChange();
  });
  return h("div", { class: "toolbar account-bar" }, field("Managing account", select));
}

function creditDialog(account, done) {
  const amount = h("input", {
    id: "credit-amount",
    name: "quota_usd",
    inputmode: "decimal",
    autocomplete: "off",
  });
  const units = h("output", { id: "credit-units", for: "credit-amount" });
  const note = h("input", { id: "credit-note", name: "note", maxlength: 256, autocomplete: "off" });
  const cancel = h("button", { type: "button", class: "secondary", text: "Cancel" });
  const form = h(
    "form",
    { method: "dialog", class: "dialog-body", novalidate: true },
    h("h2", { text: `Credit ${account.name}` }),
    formError("credit-err-form"),
    field("Amount (US$)", amount, units),
    errorSlot("quota_usd", "credit-"),
    field("Note (optional)", note),
    errorSlot("note", "credit-"),
    h(
      "div",
      { class: "actions" },
      cancel,
      h("button", { type: "submit", id: "credit-submit", text: "Credit" }),
    ),
  );
  form.errorAliases = { quota_units: "quota_usd" };
  const dialog = h("dialog", { id: "credit-dialog", "aria-label": `Credit ${account.name}` }, form);
  liveUnits(amount, units);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  onSubmit(form, async () => {
    await api("POST", `/admin/accounts/${encodeURIComponent(account.id)}/credit`, {
      body: { quota_usd: amount.value.trim(), note: note.value },
    });
    dialog.close();
    toast(`Credited ${account.name}.`);
    await done();
  });
  document.body.append(dialog);
  dialog.showModal();
  amount.focus();
}

// Submit through the API: every field's error appears beside it, the form's own above.
function onSubmit(form, action) {
  form.addEventListener(
    "submit",
    guarded(
      async (event) => {
        event.preventDefault();
        resetInvalid(form);
        showFieldErrors(form, null);
        await action();
      },
      (error) => showFieldErrors(form, error),
    ),
  );
}

function createForm(done) {
  const quota = h("input", {
    id: "acct-quota_usd",
    name: "quota_usd",
    inputmode: "decimal",
    autocomplete: "off",
    placeholder: "e.g. 10.00",
  });
  const units = h("output", { id: "acct-quota-units", for: "acct-quota_usd" });
  const unlimited = h("input", { id: "acct-unlimited", name: "unlimited", type: "checkbox" });
  const name = h("input", { id: "acct-name", name: "name", maxlength: 64, autocomplete: "off" });
  const form = h(
    "form",
    { class: "card", id: "account-form", novalidate: true },
    h("h2", { text: "New account" }),
    formError("acct-err-form"),
    field("Name", name),
    errorSlot("name", "acct-"),
    field("Starting balance (US$)", quota, units),
    errorSlot("quota_usd", "acct-"),
    h(
      "div",
      { class: "choice" },
      unlimited,
      h("label", { for: "acct-unlimited", text: "Unlimited balance" }),
    ),
    errorSlot("unlimited", "acct-"),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", id: "acct-submit", text: "Create account" }),
    ),
  );
  form.errorAliases = { quota_units: "quota_usd" };
  liveUnits(quota, units);
  onSubmit(form, async () => {
    const body = { name: name.value };
    if (unlimited.checked) body.unlimited = true;
    if (quota.value.trim()) body.quota_usd = quota.value.trim();
    const created = await api("POST", "/admin/accounts", { body });
    form.reset();
    units.textContent = "";
    await done();
    const owner = created.account.name;
    const token = created.default_token;
    showKeys(
      [
        { label: `Management key of "${owner}" (mk-)`, key: created.management_key },
        { label: `Default API key of "${owner}" (sk-)`, key: token.key, tokenId: token.id },
      ],
      { title: "New account keys", testable: true },
    );
  });
  return form;
}

export async function render(view) {
  const message = h("p", { class: "form-error", role: "alert", hidden: true });
  const report = (error) => {
    message.textContent = error.message;
    message.hidden = false;
  };
  const accounts = table("accounts-table", "account-rows", [
    "Name",
    "ID",
    "Status",
    "Balance",
    "Used",
    "Actions",
  ]);
  const pager = cursorPager("accounts", load, report);

  function row(account) {
    const enabled = account.status === "enabled";
    const path = `/admin/accounts/${encodeURIComponent(account.id)}`;
    const toggle = guarded(async () => {
      const question = `Disable "${account.name}"? Its keys stop working at once.`;
      if (enabled && !(await confirmAction(question, "Disable"))) return;
      await api("PATCH", path, { body: { status: enabled ? "disabled" : "enabled" } });
      await load();
    }, report);
    const actions = h(
      "div",
      { class: "row-actions" },
      h("a", {
        class: "button secondary",
        href: `#/tokens?account_id=${encodeURIComponent(account.id)}`,
        text: "Tokens",
        "aria-label": `Manage the tokens of ${account.name}`,
      }),
      h("button", {
        type: "button",
        class: "secondary",
        text: "Credit",
        "aria-label": `Credit ${account.name}`,
        onclick: () => creditDialog(account, load),
      }),
      h("button", {
        type: "button",
        class: enabled ? "danger" : "secondary",
        text: enabled ? "Disable" : "Enable",
        "aria-label": `${enabled ? "Disable" : "Enable"} account ${account.name}`,
        onclick: toggle,
      }),
    );
    return h(
      "tr",
      { "data-account-id": account.id },
      cell("Name", h("span", { class: "account-name", text: account.name })),
      cell("ID", h("span", { class: "mono", text: account.id })),
      cell("Status", h("span", { class: `status status-${account.status}`, text: account.status })),
      cell("Balance", h("span", { class: "balance", text: balance(account) })),
      cell("Used", trimUsd(account.used_usd)),
      cell("Actions", actions),
    );
  }

  async function load() {
    const page = await api("GET", "/admin/accounts", {
      query: { limit: PAGE_SIZE, cursor: pager.cursor() },
    });
    clear(accounts.body);
    for (const account of page.data) accounts.body.append(row(account));
    pager.loaded(page.next_cursor);
  }

  view.append(h("h1", { text: "Accounts" }), createForm(load), message, accounts.element);
  view.append(pager.element);
  await load();
}
