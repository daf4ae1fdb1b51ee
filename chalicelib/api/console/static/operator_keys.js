// Admin only: operator keys (ops-), each limited to the scopes it was given. Created here with
// its scopes and expiry and shown once; listed with when it was last used; disabled, enabled
// or deleted.

import { api } from "./api.js";
import { confirmAction, showKeys } from "./dialogs.js";
import { alertLine, cell, clear, cursorPager, emptyRow, errorSlot, field, formError, guarded, h, submitForm, table, toast } from "./dom.js";
import { relative, time } from "./format.js";
import { t } from "./i18n.js";

export const SCOPES = [
  "accounts:read",
  "accounts:write",
  "config:read",
  "config:write",
  "logs:read",
  "keys:admin",
  "audit:read",
  "resets:run",
  "sweeper:run",
  "ledger:verify",
];
const EXPIRIES = ["never", "30", "90", "365"];

function createForm(done) {
  const name = h("input", { id: "ok-name", name: "name", maxlength: 64, autocomplete: "off", "data-required": "true" });
  const boxes = SCOPES.map((scope) => {
    const id = `ok-scope-${scope.replace(":", "-")}`;
    return h("span", { class: "choice" }, h("input", { type: "checkbox", id, name: "scopes", value: scope }), h("label", { for: id }, h("span", { class: "mono", text: scope }), " ", h("small", { class: "muted", text: t(`scope.${scope}`) })));
  });
  const expiry = h("select", { id: "ok-expiry", name: "expiry" }, EXPIRIES.map((value) => h("option", { value, text: t(`keys_page.expiry_${value}`) })));
  const form = h(
    "form",
    { class: "card", id: "operator-key-form", novalidate: true },
    h("h2", { text: t("keys_page.new") }),
    formError("ok-err-form"),
    field(t("form.name"), name, errorSlot("name", "ok-")),
    h("fieldset", { class: "group" }, h("legend", {}, t("keys_page.scopes"), h("span", { class: "required", "aria-hidden": "true", text: " *" })), h("div", { class: "scope-list" }, boxes), errorSlot("scopes", "ok-")),
    field(t("form.expiry"), expiry),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "ok-submit", text: t("action.create") })),
  );
  const chosen = () => [...form.querySelectorAll('input[name="scopes"]:checked')].map((box) => box.value);
  submitForm(form, {
    name: () => (name.value.trim() ? null : t("validate.required")),
    scopes: () => (chosen().length ? null : t("validate.scope")),
  }, async () => {
    const body = { name: name.value.trim(), scopes: chosen() };
    if (expiry.value !== "never") body.expires_in_days = Number(expiry.value);
    const created = await api("POST", "/admin/keys", { body });
    form.reset();
    await done();
    showKeys([{ label: t("keys_page.key_named", { name: created.name }), name: created.name, key: created.key }], { title: t("keys_page.created") });
  });
  return form;
}

export async function render(view) {
  const message = alertLine();
  const columns = ["col.name", "col.key", "keys_page.scopes", "col.status", "col.expires", "col.last_used", "col.created", "col.actions"].map((k) => t(k));
  const list = table("operator-keys-table", "operator-key-rows", columns);
  const pager = cursorPager("okeys", load, message.show);

  async function load() {
    const page = await api("GET", "/admin/keys", { query: { limit: 50, cursor: pager.cursor() } });
    clear(list.body);
    for (const key of page.data) {
      const path = `/admin/keys/${encodeURIComponent(key.id)}`;
      const enabled = key.status !== "disabled";
      const verb = enabled ? t("action.disable") : t("action.enable");
      const toggle = guarded(async () => {
        await api("PATCH", path, { body: { status: enabled ? "disabled" : "enabled" } });
        toast(t("toast.saved"));
        await load();
      }, message.show);
      const remove = guarded(async () => {
        if (!(await confirmAction(t("keys_page.delete_question", { name: key.name }), t("action.delete")))) return;
        await api("DELETE", path);
        await load();
      }, message.show);
      list.body.append(
        h(
          "tr",
          { "data-key-id": key.id },
          cell(columns[0], h("span", { class: "token-name", text: key.name })),
          cell(columns[1], h("span", { class: "mono", text: key.key_preview })),
          cell(columns[2], h("span", { class: "mono wrap", text: key.scopes.join(" ") })),
          cell(columns[3], h("span", { class: `status status-${key.status}`, text: t(`status.${key.status}`) })),
          cell(columns[4], key.expires_at ? `${time(key.expires_at)} (${relative(key.expires_at)})` : t("time.never")),
          cell(columns[5], key.last_used_at ? `${time(key.last_used_at)} (${relative(key.last_used_at)})` : t("time.never_used")),
          cell(columns[6], time(key.created_at, "—")),
          cell(columns[7], h("div", { class: "row-actions" },
            h("button", { type: "button", class: "secondary", text: verb, "aria-label": t("keys_page.toggle_label", { verb, name: key.name }), onclick: toggle }),
            h("button", { type: "button", class: "danger", text: t("action.delete"), "aria-label": t("keys_page.delete_label", { name: key.name }), onclick: remove }),
          )),
        ),
      );
    }
    if (!page.data.length) list.body.append(emptyRow(columns.length, t("keys_page.none")));
    pager.loaded(page.next_cursor);
  }

  view.append(h("h1", { text: t("keys_page.title") }), h("p", { class: "hint", text: t("keys_page.hint") }), createForm(load), message.element, list.element, pager.element);
  await load();
}
