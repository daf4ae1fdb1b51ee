// Admin only: the relay's configuration. Channels (create, edit, enable/disable, delete; a
// provider key can be set or replaced but is never shown: the API answers only whether one is
// set), model prices (per million tokens or per request) and group ratios (with the accounts
// granted each group, and the automatic order when the API reports one).

import { api } from "./api.js";
import { confirmAction, formDialog } from "./dialogs.js";
import { alertLine, cell, clear, emptyRow, errorSlot, field, formError, guarded, h, splitList, submitForm, table, toast } from "./dom.js";
import { usdFine } from "./format.js";
import { t } from "./i18n.js";

const DECIMAL = /^\d{1,10}(\.\d{1,12})?$/;

function input(prefix, name, props = {}) {
  return h("input", { id: `${prefix}-${name}`, name, autocomplete: "off", ...props });
}

function decimalRule(control, required = true) {
  return () => {
    const text = control.value.trim();
    if (!text) return required ? t("validate.required") : null;
    if (/^\d+,\d+$/.test(text)) return t("validate.decimal_comma");
    return DECIMAL.test(text) ? null : t("validate.amount");
  };
}

// Channels ---------------------------------------------------------------------------------
function channelDialog(channel, done) {
  const editing = Boolean(channel);
  const p = "ch";
  const name = input(p, "name", { value: channel?.name ?? "", maxlength: 64, "data-required": "true" });
  const baseUrl = input(p, "base_url", { value: channel?.base_url ?? "", placeholder: "https://api.openai.com/v1", inputmode: "url", "data-required": "true" });
  const apiKey = input(p, "api_key", { type: "password", placeholder: editing && channel.api_key_set ? t("channels.key_kept") : "sk-…" });
  const removeKey = h("input", { type: "checkbox", id: `${p}-remove-key`, name: "remove_key" });
  const models = h("textarea", { id: `${p}-models`, name: "models", rows: 2, value: (channel?.models ?? []).join("\n"), "data-required": "true" });
  const modelMap = h("textarea", { id: `${p}-model_map`, name: "model_map", rows: 2, placeholder: "gpt-4o=gpt-4o-2024-08-06", value: Object.entries(channel?.model_map ?? {}).map(([a, b]) => `${a}=${b}`).join("\n") });
  const group = input(p, "group", { value: channel?.group ?? "default", "data-required": "true" });
  const priority = input(p, "priority", { type: "number", value: channel?.priority ?? 0 });
  const weight = input(p, "weight", { type: "number", min: 1, value: channel?.weight ?? 1 });
  const enabled = h("input", { type: "checkbox", id: `${p}-enabled`, name: "enabled", checked: channel ? channel.enabled : true });
  const form = h(
    "form",
    { class: "dialog-form", id: "channel-form", novalidate: true },
    formError("ch-err-form"),
    field(t("form.name"), name, errorSlot("name", "ch-")),
    field(t("channels.base_url"), baseUrl, errorSlot("base_url", "ch-")),
    field(t("channels.api_key"), apiKey, h("p", { class: "hint", text: t("channels.api_key_hint") }), errorSlot("api_key", "ch-")),
    editing && channel.api_key_set ? h("div", { class: "choice" }, removeKey, h("label", { for: removeKey.id, text: t("channels.remove_key") })) : null,
    field(t("channels.models"), models, errorSlot("models", "ch-")),
    field(t("channels.model_map"), modelMap, h("p", { class: "hint", text: t("channels.model_map_hint") }), errorSlot("model_map", "ch-")),
    field(t("col.group"), group, errorSlot("group", "ch-")),
    h("div", { class: "two" }, field(t("channels.priority"), priority, errorSlot("priority", "ch-")), field(t("channels.weight"), weight, errorSlot("weight", "ch-"))),
    h("div", { class: "choice" }, enabled, h("label", { for: enabled.id, text: t("status.enabled") })),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "ch-submit", text: editing ? t("action.save") : t("action.create") })),
  );
  const mapEntries = () => splitList(modelMap.value).map((line) => line.split("="));
  const dialog = formDialog("channel-dialog", editing ? t("channels.edit", { name: channel.name }) : t("channels.new"), form);
  const integer = (control, min, max) => () => {
    const text = String(control.value).trim();
    return /^-?\d+$/.test(text) && Number(text) >= min && Number(text) <= max ? null : t("validate.range", { min, max });
  };
  submitForm(
    form,
    {
      name: () => (name.value.trim() ? null : t("validate.required")),
      base_url: () => (/^https?:\/\/[^\s/]+/.test(baseUrl.value.trim()) ? null : t("validate.url")),
      models: () => (splitList(models.value).length ? null : t("validate.required")),
      model_map: () => (mapEntries().every((pair) => pair.length === 2 && pair[0] && pair[1]) ? null : t("validate.model_map")),
      group: () => (/^[A-Za-z0-9_.-]{1,64}$/.test(group.value.trim()) ? null : t("validate.group_name")),
      priority: integer(priority, -1000, 1000),
      weight: integer(weight, 1, 1000),
    },
    async () => {
      const body = {
        name: name.value.trim(),
        base_url: baseUrl.value.trim(),
        models: splitList(models.value),
        model_map: Object.fromEntries(mapEntries()),
        group: group.value.trim(),
        priority: Number(priority.value),
        weight: Number(weight.value),
        enabled: enabled.checked,
      };
      if (apiKey.value.trim()) body.api_key = apiKey.value.trim();
      else if (removeKey.checked) body.api_key = null;
      if (editing) await api("PATCH", `/admin/channels/${encodeURIComponent(channel.id)}`, { body });
      else await api("POST", "/admin/channels", { body });
      // The provider key leaves the page with the dialog.
      apiKey.value = "";
      dialog.close();
      toast(t("toast.saved"));
      await done();
    },
  );
}

export async function renderChannels(view) {
  const message = alertLine();
  const columns = ["col.name", "col.group", "channels.base_url", "channels.models", "channels.priority_weight", "channels.key", "col.status", "col.actions"].map((k) => t(k));
  const list = table("channels-table", "channel-rows", columns);

  async function load() {
    const answer = await api("GET", "/admin/channels");
    clear(list.body);
    for (const channel of answer.data) {
      const path = `/admin/channels/${encodeURIComponent(channel.id)}`;
      const toggle = guarded(async () => {
        await api("PATCH", path, { body: { enabled: !channel.enabled } });
        await load();
      }, message.show);
      const remove = guarded(async () => {
        if (!(await confirmAction(t("channels.delete_question", { name: channel.name }), t("action.delete")))) return;
        await api("DELETE", path);
        await load();
      }, message.show);
      const verb = channel.enabled ? t("action.disable") : t("action.enable");
      list.body.append(
        h(
          "tr",
          { "data-channel-id": channel.id },
          cell(columns[0], h("span", { class: "token-name", text: channel.name }), h("small", { class: "muted mono", text: channel.id })),
          cell(columns[1], channel.group),
          cell(columns[2], h("span", { class: "mono wrap", text: channel.base_url })),
          cell(columns[3], h("span", { class: "wrap", text: channel.models.join(", ") })),
          cell(columns[4], `${channel.priority} / ${channel.weight}`),
          cell(columns[5], channel.api_key_set ? t("channels.key_set") : t("channels.key_none")),
          cell(columns[6], h("span", { class: `status status-${channel.enabled ? "enabled" : "disabled"}`, text: t(channel.enabled ? "status.enabled" : "status.disabled") })),
          cell(
            columns[7],
            h(
              "div",
              { class: "row-actions" },
              h("button", { type: "button", class: "secondary", text: verb, "aria-label": t("channels.toggle_label", { verb, name: channel.name }), onclick: toggle }),
              h("button", { type: "button", class: "secondary", text: t("action.edit"), "aria-label": t("channels.edit", { name: channel.name }), onclick: () => channelDialog(channel, load) }),
              h("button", { type: "button", class: "danger", text: t("action.delete"), "aria-label": t("channels.delete_label", { name: channel.name }), onclick: remove }),
            ),
          ),
        ),
      );
    }
    if (!answer.data.length) list.body.append(emptyRow(columns.length, t("channels.none")));
  }

  view.append(
    h("div", { class: "page-head" }, h("h1", { text: t("channels.title") }), h("button", { type: "button", id: "new-channel", text: t("channels.new"), onclick: () => channelDialog(null, load) })),
    h("p", { class: "hint", text: t("channels.hint") }),
    message.element,
    list.element,
  );
  await load();
}

// Model prices -----------------------------------------------------------------------------
// Every billed dimension the API prices (chalicelib/core/pricing.py PRICE_FIELDS); any
// combination, at least one. An edit sends them all: a field left empty is no longer billed.
export const PRICE_FIELDS = [
  "input_usd_per_mtok",
  "output_usd_per_mtok",
  "cached_input_usd_per_mtok",
  "usd_per_request",
  "usd_per_image",
  "usd_per_mchar",
  "usd_per_minute",
  "usd_per_second",
];
// Not a price: the longest audio a transcription of the model is reserved for, in whole
// seconds (empty: the deployment's default, SLUICE_MAX_AUDIO_SECONDS).
const MAX_AUDIO_SECONDS = 86400;

function priceDialog(price, done) {
  const model = input("pr", "model", { value: price?.model ?? "", readOnly: Boolean(price), "data-required": "true" });
  const controls = Object.fromEntries(
    PRICE_FIELDS.map((name) => [name, input("pr", name, { inputmode: "decimal", value: price?.[name] ?? "" })]),
  );
  const maxAudio = input("pr", "max_audio_seconds", {
    type: "number",
    min: 1,
    max: MAX_AUDIO_SECONDS,
    step: 1,
    inputmode: "numeric",
    value: price?.max_audio_seconds ?? "",
    placeholder: t("prices.max_audio_default"),
  });
  const form = h(
    "form",
    { class: "dialog-form", id: "price-form", novalidate: true },
    formError("pr-err-form"),
    field(t("col.model"), model, errorSlot("model", "pr-")),
    h("p", { class: "hint", text: t("prices.any_hint") }),
    h("div", { class: "two" }, PRICE_FIELDS.map((name) => field(t(`prices.${name}`), controls[name], errorSlot(name, "pr-")))),
    field(t("prices.max_audio_seconds"), maxAudio, errorSlot("max_audio_seconds", "pr-"), h("p", { class: "hint", text: t("prices.max_audio_hint") })),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "pr-submit", text: t("action.save") })),
  );
  const dialog = formDialog("price-dialog", price ? t("prices.edit", { model: price.model }) : t("prices.new"), form);
  const rules = {
    model: () => (/^\S{1,128}$/.test(model.value.trim()) ? null : t("validate.required")),
    input_usd_per_mtok: () =>
      PRICE_FIELDS.some((name) => controls[name].value.trim()) ? null : t("validate.one_price"),
  };
  for (const name of PRICE_FIELDS) {
    const check = decimalRule(controls[name], false);
    const previous = rules[name];
    rules[name] = () => check() || (previous ? previous() : null);
  }
  rules.max_audio_seconds = () => {
    const text = maxAudio.value.trim();
    if (!text) return null;
    const seconds = Number(text);
    const whole = /^\d+$/.test(text) && seconds >= 1 && seconds <= MAX_AUDIO_SECONDS;
    return whole ? null : t("validate.range", { min: 1, max: MAX_AUDIO_SECONDS });
  };
  submitForm(form, rules, async () => {
    const body = {};
    for (const name of PRICE_FIELDS) {
      if (controls[name].value.trim()) body[name] = controls[name].value.trim();
    }
    if (maxAudio.value.trim()) body.max_audio_seconds = Number(maxAudio.value.trim());
    await api("PUT", `/admin/models/${encodeURIComponent(model.value.trim())}`, { body });
    dialog.close();
    toast(t("toast.saved"));
    await done();
  });
}

function priceSummary(price) {
  const parts = PRICE_FIELDS.filter((name) => price[name] !== undefined && price[name] !== null);
  const shown = parts.map((name) => `${t(`prices.short_${name}`)} ${usdFine(price[name])}`);
  if (price.max_audio_seconds) shown.push(t("prices.short_max_audio", { seconds: price.max_audio_seconds }));
  return shown.join(" · ") || "—";
}

export async function renderPrices(view) {
  const message = alertLine();
  const columns = ["col.model", "prices.price", "col.actions"].map((k) => t(k));
  const list = table("prices-table", "price-rows", columns);
  async function load() {
    const answer = await api("GET", "/admin/models");
    clear(list.body);
    for (const price of answer.data) {
      const remove = guarded(async () => {
        if (!(await confirmAction(t("prices.delete_question", { model: price.model }), t("action.delete")))) return;
        await api("DELETE", `/admin/models/${encodeURIComponent(price.model)}`);
        await load();
      }, message.show);
      list.body.append(
        h(
          "tr",
          { "data-model": price.model },
          cell(columns[0], h("span", { class: "mono", text: price.model })),
          cell(columns[1], h("span", { class: "wrap", text: priceSummary(price) })),
          cell(columns[2], h("div", { class: "row-actions" },
            h("button", { type: "button", class: "secondary", text: t("action.edit"), "aria-label": t("prices.edit", { model: price.model }), onclick: () => priceDialog(price, load) }),
            h("button", { type: "button", class: "danger", text: t("action.delete"), "aria-label": t("prices.delete_label", { model: price.model }), onclick: remove }),
          )),
        ),
      );
    }
    if (!answer.data.length) list.body.append(emptyRow(columns.length, t("prices.none")));
  }
  view.append(
    h("div", { class: "page-head" }, h("h1", { text: t("prices.title") }), h("button", { type: "button", id: "new-price", text: t("prices.new"), onclick: () => priceDialog(null, load) })),
    h("p", { class: "hint", text: t("prices.hint") }),
    message.element,
    list.element,
  );
  await load();
}

// Groups -------------------------------------------------------------------------------------
async function allAccounts() {
  const found = [];
  let cursor = null;
  for (let page = 0; page < 10; page += 1) {
    const answer = await api("GET", "/admin/accounts", { query: { limit: 100, cursor } });
    found.push(...answer.data);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return found;
}

export async function renderGroups(view) {
  const message = alertLine();
  const columns = ["col.group", "groups.ratio", "groups.channels", "groups.accounts", "col.actions"].map((k) => t(k));
  const list = table("groups-table", "group-rows", columns);
  // The order `auto` keys pick their group in (PUT /admin/groups/auto): comma-separated names.
  const order = input("ao", "order", { placeholder: "default, vip", "data-required": "true" });
  const autoForm = h(
    "form",
    { class: "card", id: "auto-form", novalidate: true },
    h("h2", { text: t("groups.auto_title") }),
    formError("ao-err-form"),
    field(t("groups.auto_label"), order, errorSlot("order", "ao-")),
    h("p", { class: "hint", text: t("groups.auto_hint") }),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "ao-submit", text: t("action.save") })),
  );
  const group = input("gr", "group", { "data-required": "true" });
  const ratio = input("gr", "ratio", { inputmode: "decimal", placeholder: "1.0", "data-required": "true" });
  const form = h(
    "form",
    { class: "card", id: "group-form", novalidate: true },
    h("h2", { text: t("groups.set") }),
    formError("gr-err-form"),
    h("div", { class: "two" }, field(t("col.group"), group, errorSlot("group", "gr-")), field(t("groups.ratio"), ratio, errorSlot("ratio", "gr-"))),
    h("p", { class: "hint", text: t("groups.ratio_hint") }),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "gr-submit", text: t("action.save") })),
  );

  async function load() {
    const [ratios, channels, accounts] = await Promise.all([api("GET", "/admin/groups"), api("GET", "/admin/channels"), allAccounts()]);
    const names = new Set([...ratios.data.map((row) => row.group), ...channels.data.map((c) => c.group), ...accounts.flatMap((a) => a.groups)]);
    const ratioOf = new Map(ratios.data.map((row) => [row.group, row.ratio]));
    clear(list.body);
    for (const name of [...names].sort()) {
      const served = channels.data.filter((c) => c.group === name);
      const granted = accounts.filter((a) => a.groups.includes(name));
      const edit = () => {
        group.value = name;
        ratio.value = ratioOf.get(name) ?? "1";
        ratio.focus();
      };
      list.body.append(
        h(
          "tr",
          { "data-group": name },
          cell(columns[0], h("span", { class: "mono", text: name })),
          cell(columns[1], ratioOf.get(name) ?? t("groups.ratio_default")),
          cell(columns[2], served.length ? served.map((c) => c.name).join(", ") : "—"),
          cell(columns[3], h("span", { class: "wrap", text: granted.length ? granted.map((a) => a.name).join(", ") : "—" })),
          cell(columns[4], h("button", { type: "button", class: "secondary", text: t("action.edit"), "aria-label": t("groups.edit_label", { group: name }), onclick: edit })),
        ),
      );
    }
    if (!names.size) list.body.append(emptyRow(columns.length, t("groups.none")));
    order.value = (ratios.auto?.order ?? []).join(", ");
  }

  submitForm(
    form,
    {
      group: () => (/^[A-Za-z0-9_.-]{1,64}$/.test(group.value.trim()) ? null : t("validate.group_name")),
      ratio: decimalRule(ratio),
    },
    async () => {
      await api("PUT", `/admin/groups/${encodeURIComponent(group.value.trim())}`, { body: { ratio: ratio.value.trim() } });
      toast(t("toast.saved"));
      form.reset();
      await load();
    },
  );
  submitForm(
    autoForm,
    {
      order: () => {
        const names = splitList(order.value);
        if (!names.length) return t("validate.required");
        return names.every((name) => /^[A-Za-z0-9_.-]{1,64}$/.test(name) && name !== "auto") ? null : t("validate.group_name");
      },
    },
    async () => {
      await api("PUT", "/admin/groups/auto", { body: { order: splitList(order.value) } });
      toast(t("toast.saved"));
      await load();
    },
  );
  view.append(h("h1", { text: t("groups.title") }), h("p", { class: "hint", text: t("groups.hint") }), form, autoForm, message.element, list.element);
  await load();
}
