// The token list: effective status, quota use, reset and expiry, with the row actions
// (enable/disable, edit, regenerate, delete). Filtering by status happens on the server
// (?status=), paging follows ``next_cursor``.

import { api, session } from "./api.js";
import { confirmAction, showKeys } from "./dialogs.js";
import {
  append,
  cell,
  clear,
  cursorPager,
  field,
  formatTime,
  guarded,
  h,
  table,
  toast,
  trimUsd,
} from "./dom.js";

const STATUSES = ["enabled", "disabled", "expired", "exhausted"];
const PAGE_SIZE = 20;
const COLUMNS = ["Name", "Key", "Status", "Quota", "Reset", "Expires", "Last used", "Actions"];

function quotaCell(token) {
  const used = trimUsd(token.used_usd);
  if (token.quota_units === null) {
    return h("span", { class: "unlimited", text: "unlimited" }, ` (${used} used)`);
  }
  return h(
    "div",
    { class: "quota" },
    h("progress", {
      max: Math.max(token.quota_units, 1),
      value: Math.min(token.used_units + token.reserved_units, token.quota_units),
      "aria-label": `Quota used for ${token.name}`,
    }),
    h("span", { class: "quota-text", text: `${used} of ${trimUsd(token.quota_usd)} used` }),
  );
}

function resetCell(token) {
  if (!token.reset_period || token.reset_period === "never") return "none";
  const next = `next ${formatTime(token.next_reset_at, "—")}`;
  return h("span", {}, token.reset_period, h("br"), h("small", { text: next }));
}

function actionButton(text, label, className, onclick) {
  return h("button", { type: "button", class: className, text, "aria-label": label, onclick });
}

export async function render(view, params) {
  const message = h("p", { class: "form-error", role: "alert", hidden: true });
  const report = (error) => {
    message.textContent = error.message;
    message.hidden = false;
  };
  const state = { status: STATUSES.includes(params.get("status")) ? params.get("status") : "" };
  const statusSelect = h(
    "select",
    { id: "status-filter", name: "status" },
    h("option", { value: "", text: "All" }),
    STATUSES.map((status) =>
      h("option", { value: status, text: status, selected: status === state.status }),
    ),
  );
  const tokens = table("tokens-table", "token-rows", COLUMNS);
  const pager = cursorPager("tokens", load, report);

  async function load() {
    const page = await api("GET", "/tokens", {
      query: { status: state.status, limit: PAGE_SIZE, cursor: pager.cursor() },
      scoped: true,
    });
    clear(tokens.body);
    for (const token of page.data) tokens.body.append(row(token));
    if (!page.data.length) {
      const empty = h("td", { colspan: COLUMNS.length, class: "empty", text: "No tokens." });
      tokens.body.append(h("tr", {}, empty));
    }
    pager.loaded(page.next_cursor);
  }

  function row(token) {
    const path = `/tokens/${encodeURIComponent(token.id)}`;
    const enabled = token.status !== "disabled";
    const verb = enabled ? "Disable" : "Enable";
    const toggle = guarded(async () => {
      const body = { status: enabled ? "disabled" : "enabled" };
      await api("PATCH", path, { body, scoped: true });
      toast(`Token ${body.status}.`);
      await load();
    }, report);
    const regenerate = guarded(async () => {
      const question =
        `Regenerate the key of "${token.name}"? The current key stops working at once.`;
      if (!(await confirmAction(question, "Regenerate"))) return;
      const updated = await api("POST", `${path}/regenerate`, { scoped: true });
      await load();
      const entry = { label: `Key "${updated.name}"`, key: updated.key, tokenId: updated.id };
      showKeys([entry], { title: "Your regenerated key", testable: true });
    }, report);
    const remove = guarded(async () => {
      const question = `Delete "${token.name}"? Its key stops working at once.`;
      if (!(await confirmAction(question, "Delete"))) return;
      await api("DELETE", path, { scoped: true });
      toast("Token deleted.");
      await load();
    }, report);
    const regenerateLabel = `Regenerate the key of token ${token.name}`;
    const actions = h(
      "div",
      { class: "row-actions" },
      actionButton(verb, `${verb} token ${token.name}`, "secondary", toggle),
      h("a", {
        class: "button secondary",
        href: `#${path}/edit`,
        text: "Edit",
        "aria-label": `Edit token ${token.name}`,
      }),
      actionButton("Regenerate", regenerateLabel, "secondary", regenerate),
      actionButton("Delete", `Delete token ${token.name}`, "danger", remove),
    );
    return h(
      "tr",
      { "data-token-id": token.id },
      cell("Name", h("span", { class: "token-name", text: token.name })),
      cell("Key", h("span", { class: "mono", text: token.key_preview })),
      cell("Status", h("span", { class: `status status-${token.status}`, text: token.status })),
      cell("Quota", quotaCell(token)),
      cell("Reset", resetCell(token)),
      cell("Expires", formatTime(token.expires_at)),
      cell("Last used", formatTime(token.last_used_at)),
      cell("Actions", actions),
    );
  }

  statusSelect.addEventListener(
    "change",
    guarded(async () => {
      state.status = statusSelect.value;
      pager.restart();
      await load();
    }, report),
  );

  append(view, [
    h(
      "div",
      { class: "page-head" },
      h("h1", { text: "Tokens" }),
      h("a", { href: "#/tokens/new", class: "button", id: "new-token", text: "Create token" }),
    ),
    session.isAdmin
      ? h("p", { class: "hint", text: "Tokens of the account chosen above." })
      : null,
    h("div", { class: "toolbar" }, field("Status", statusSelect)),
    message,
    tokens.element,
    pager.element,
  ]);
  await load();
}
