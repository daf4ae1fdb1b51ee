// The token list: effective status, group, what is left, expiry, creation and last use, with
// the row actions (enable/disable, edit, regenerate, delete), a search, sortable columns and
// bulk disable/delete. Status filtering happens on the server (?status=); search and sort
// apply to the page shown (up to 100 keys), paging follows ``next_cursor``.

import { api, session } from "./api.js";
import { confirmAction, showKeys } from "./dialogs.js";
import {
  alertLine,
  append,
  cell,
  clear,
  cursorPager,
  emptyRow,
  field,
  guarded,
  h,
  table,
  toast,
} from "./dom.js";
import { relative, time, usd } from "./format.js";
import { t } from "./i18n.js";

const STATUSES = ["enabled", "disabled", "expired", "exhausted"];
const PAGE_SIZE = 100;

function remainingCell(token) {
  if (token.quota_units === null) {
    return h(
      "div",
      { class: "quota" },
      h("span", { class: "unlimited", text: t("money.unlimited") }),
      h("small", { class: "muted", text: t("tokens.used", { amount: usd(token.used_usd) }) }),
    );
  }
  return h(
    "div",
    { class: "quota" },
    h("span", { class: "remaining", text: usd(token.remaining_usd) }),
    h("progress", {
      max: Math.max(token.quota_units, 1),
      value: Math.min(token.used_units + token.reserved_units, token.quota_units),
      "aria-label": t("tokens.quota_used_for", { name: token.name }),
    }),
    h("small", {
      class: "quota-text",
      text: t("tokens.used_of", { used: usd(token.used_usd), quota: usd(token.quota_usd) }),
    }),
    token.reset_period && token.reset_period !== "never"
      ? h("small", {
          class: "muted reset",
          text: t("tokens.resets", { period: t(`reset.${token.reset_period}`), when: relative(token.next_reset_at) }),
        })
      : null,
  );
}

function timeCell(iso, empty) {
  if (!iso) return h("span", { class: "muted", text: empty });
  return h("span", { class: "when" }, h("span", { text: time(iso) }), h("small", { class: "muted", text: relative(iso) }));
}

const SORTERS = {
  name: (token) => token.name.toLowerCase(),
  created: (token) => token.created_at || "",
  remaining: (token) => (token.remaining_units === null ? Number.MAX_SAFE_INTEGER : token.remaining_units),
  expires: (token) => token.expires_at || "9999",
  last_used: (token) => token.last_used_at || "",
};

export async function render(view, params) {
  const message = alertLine();
  const state = {
    status: STATUSES.includes(params.get("status")) ? params.get("status") : "",
    search: "",
    sort: null,
    descending: false,
    items: [],
    selected: new Set(),
  };
  const statusSelect = h(
    "select",
    { id: "status-filter", name: "status" },
    h("option", { value: "", text: t("filter.all") }),
    STATUSES.map((status) =>
      h("option", { value: status, text: t(`status.${status}`), selected: status === state.status }),
    ),
  );
  const search = h("input", {
    id: "token-search",
    name: "search",
    type: "search",
    autocomplete: "off",
    placeholder: t("tokens.search_placeholder"),
  });
  const selectAll = h("input", { type: "checkbox", id: "select-all", "aria-label": t("tokens.select_all") });
  const columns = [
    { label: "", node: selectAll, class: "select-col" },
    { label: t("col.name"), sort: "name" },
    { label: t("col.key") },
    { label: t("col.group") },
    { label: t("col.status") },
    { label: t("col.remaining"), sort: "remaining" },
    { label: t("col.expires"), sort: "expires" },
    { label: t("col.created"), sort: "created" },
    { label: t("col.last_used"), sort: "last_used" },
    { label: t("col.actions") },
  ];
  const tokens = table("tokens-table", "token-rows", columns, (key, th) => {
    state.descending = state.sort === key ? !state.descending : false;
    state.sort = key;
    for (const heading of tokens.headings) heading.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", state.descending ? "descending" : "ascending");
    draw();
  });
  const pager = cursorPager("tokens", load, message.show);
  const bulkDisable = h("button", { type: "button", class: "secondary", id: "bulk-disable", text: t("tokens.bulk_disable"), disabled: true });
  const bulkDelete = h("button", { type: "button", class: "danger", id: "bulk-delete", text: t("tokens.bulk_delete"), disabled: true });
  const selectedCount = h("span", { class: "muted", id: "selected-count", "aria-live": "polite" });

  function syncBulk() {
    const n = state.selected.size;
    bulkDisable.disabled = bulkDelete.disabled = n === 0;
    selectedCount.textContent = n ? t("tokens.selected", { n }) : "";
    const visible = shown();
    selectAll.checked = visible.length > 0 && visible.every((token) => state.selected.has(token.id));
  }

  function shown() {
    const needle = state.search.trim().toLowerCase();
    let items = state.items.filter(
      (token) =>
        !needle ||
        token.name.toLowerCase().includes(needle) ||
        token.key_preview.toLowerCase().includes(needle) ||
        token.group.toLowerCase().includes(needle),
    );
    if (state.sort) {
      const key = SORTERS[state.sort];
      items = [...items].sort((a, b) => {
        const [x, y] = [key(a), key(b)];
        const order = x < y ? -1 : x > y ? 1 : 0;
        return state.descending ? -order : order;
      });
    }
    return items;
  }

  function draw() {
    clear(tokens.body);
    const items = shown();
    for (const token of items) tokens.body.append(row(token));
    if (!items.length) {
      const text = state.items.length ? t("tokens.none_match") : t("tokens.none");
      tokens.body.append(emptyRow(columns.length, text));
    }
    syncBulk();
  }

  async function load() {
    message.hide();
    const page = await api("GET", "/tokens", {
      query: { status: state.status, limit: PAGE_SIZE, cursor: pager.cursor() },
      scoped: true,
    });
    state.items = page.data;
    state.selected.clear();
    draw();
    pager.loaded(page.next_cursor);
  }

  function row(token) {
    const path = `/tokens/${encodeURIComponent(token.id)}`;
    const enabled = token.status !== "disabled";
    const verb = enabled ? t("action.disable") : t("action.enable");
    const toggle = guarded(async () => {
      const body = { status: enabled ? "disabled" : "enabled" };
      await api("PATCH", path, { body, scoped: true });
      toast(t(enabled ? "toast.token_disabled" : "toast.token_enabled"));
      await load();
    }, message.show);
    const regenerate = guarded(async () => {
      if (!(await confirmAction(t("tokens.regenerate_question", { name: token.name }), t("action.regenerate")))) return;
      const updated = await api("POST", `${path}/regenerate`, { scoped: true });
      await load();
      const entry = { label: t("keys.key_named", { name: updated.name }), name: updated.name, key: updated.key, tokenId: updated.id };
      showKeys([entry], { title: t("keys.regenerated"), testable: true });
    }, message.show);
    const remove = guarded(async () => {
      if (!(await confirmAction(t("tokens.delete_question", { name: token.name }), t("action.delete")))) return;
      await api("DELETE", path, { scoped: true });
      toast(t("toast.token_deleted"));
      await load();
    }, message.show);
    const check = h("input", {
      type: "checkbox",
      class: "row-select",
      checked: state.selected.has(token.id),
      "aria-label": t("tokens.select_one", { name: token.name }),
    });
    check.addEventListener("change", () => {
      if (check.checked) state.selected.add(token.id);
      else state.selected.delete(token.id);
      syncBulk();
    });
    const actions = h(
      "div",
      { class: "row-actions" },
      h("button", { type: "button", class: "secondary", text: verb, "aria-label": t("tokens.toggle_label", { verb, name: token.name }), onclick: toggle }),
      h("a", { class: "button secondary", href: `#${path}/edit`, text: t("action.edit"), "aria-label": t("tokens.edit_label", { name: token.name }) }),
      h("button", { type: "button", class: "secondary", text: t("action.regenerate_short"), title: t("action.regenerate"), "aria-label": t("tokens.regenerate_label", { name: token.name }), onclick: regenerate }),
      h("button", { type: "button", class: "danger", text: t("action.delete"), "aria-label": t("tokens.delete_label", { name: token.name }), onclick: remove }),
    );
    return h(
      "tr",
      { "data-token-id": token.id },
      h("td", { class: "select-col" }, check),
      cell(t("col.name"), h("span", { class: "token-name", text: token.name })),
      cell(t("col.key"), h("span", { class: "mono key-preview", text: token.key_preview })),
      cell(t("col.group"), h("span", { class: "group-name", text: token.group })),
      cell(t("col.status"), h("span", { class: `status status-${token.status}`, "data-status": token.status, text: t(`status.${token.status}`) })),
      cell(t("col.remaining"), remainingCell(token)),
      cell(t("col.expires"), timeCell(token.expires_at, t("time.never"))),
      cell(t("col.created"), timeCell(token.created_at, "—")),
      cell(t("col.last_used"), timeCell(token.last_used_at, t("time.never_used"))),
      cell(t("col.actions"), actions),
    );
  }

  async function bulk(kind) {
    const ids = [...state.selected];
    const question = t(kind === "delete" ? "tokens.bulk_delete_question" : "tokens.bulk_disable_question", { n: ids.length });
    if (!(await confirmAction(question, t(kind === "delete" ? "action.delete" : "action.disable")))) return;
    for (const id of ids) {
      const path = `/tokens/${encodeURIComponent(id)}`;
      if (kind === "delete") await api("DELETE", path, { scoped: true });
      else await api("PATCH", path, { body: { status: "disabled" }, scoped: true });
    }
    toast(t(kind === "delete" ? "toast.tokens_deleted" : "toast.tokens_disabled", { n: ids.length }));
    await load();
  }
  bulkDisable.addEventListener("click", guarded(() => bulk("disable"), message.show));
  bulkDelete.addEventListener("click", guarded(() => bulk("delete"), message.show));
  selectAll.addEventListener("change", () => {
    for (const token of shown()) {
      if (selectAll.checked) state.selected.add(token.id);
      else state.selected.delete(token.id);
    }
    draw();
  });
  search.addEventListener("input", () => {
    state.search = search.value;
    draw();
  });
  statusSelect.addEventListener(
    "change",
    guarded(async () => {
      state.status = statusSelect.value;
      pager.restart();
      await load();
    }, message.show),
  );

  append(view, [
    h(
      "div",
      { class: "page-head" },
      h("h1", { text: t("tokens.title") }),
      h("a", { href: "#/tokens/new", class: "button", id: "new-token", text: t("tokens.create") }),
    ),
    session.isAdmin ? h("p", { class: "hint", text: t("tokens.admin_hint") }) : null,
    // Search and filter fold away on a phone, so the tokens are on the first screen.
    h(
      "details",
      { class: "filter-panel plain", open: window.matchMedia("(min-width: 761px)").matches },
      h("summary", { text: t("filter.title") }),
      h(
        "div",
        { class: "toolbar" },
        field(t("tokens.search"), search),
        field(t("col.status"), statusSelect),
        h("div", { class: "bulk" }, selectedCount, bulkDisable, bulkDelete),
      ),
    ),
    message.element,
    tokens.element,
    pager.element,
  ]);
  await load();
}
