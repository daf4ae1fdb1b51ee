// Pages over APIs that are newer than this console may find on a deployment: the audit log
// (GET /audit) and budget alerts (GET/PUT /account/alerts, POST /account/alerts/rotate-secret).
// Their nav entries appear only when /openapi.json lists the route; if the API still answers
// 404 the page says so and hides its entry.

import { ApiError, api } from "./api.js";
import { showKeys } from "./dialogs.js";
import { alertLine, cell, clear, cursorPager, emptyRow, errorSlot, field, formError, guarded, h, submitForm, table, toast } from "./dom.js";
import { time } from "./format.js";
import { t } from "./i18n.js";

function missing(error) {
  return error instanceof ApiError && error.status === 404;
}

export async function renderAudit(view, params, hide) {
  const message = alertLine();
  const columns = ["col.time", "audit.actor", "audit.action", "audit.target", "audit.changes", "audit.source"].map((k) => t(k));
  const list = table("audit-table", "audit-rows", columns);
  const pager = cursorPager("audit", load, message.show);
  async function load() {
    const page = await api("GET", "/audit", { query: { limit: 50, cursor: pager.cursor() } });
    clear(list.body);
    for (const entry of page.data) {
      list.body.append(
        h(
          "tr",
          {},
          cell(columns[0], time(entry.at, "—")),
          cell(columns[1], h("span", { class: "mono", text: entry.actor || "" })),
          cell(columns[2], entry.action || ""),
          cell(columns[3], h("span", { class: "mono", text: `${entry.target_type || ""} ${entry.target_id || ""}` })),
          cell(columns[4], h("code", { class: "wrap", text: entry.changes ? JSON.stringify(entry.changes) : "" })),
          cell(columns[5], h("span", { class: "mono", text: `${entry.source_ip || ""} ${entry.request_id || ""}` })),
        ),
      );
    }
    if (!page.data.length) list.body.append(emptyRow(columns.length, t("audit.none")));
    pager.loaded(page.next_cursor);
  }
  view.append(h("h1", { text: t("audit.title") }), message.element, list.element, pager.element);
  try {
    await load();
  } catch (error) {
    if (!missing(error)) throw error;
    hide();
    message.show(t("common.unavailable"));
  }
}

export async function renderAlerts(view, hide) {
  const message = alertLine();
  let current;
  try {
    current = await api("GET", "/account/alerts", { scoped: true });
  } catch (error) {
    if (!missing(error)) throw error;
    hide();
    view.append(h("h1", { text: t("alerts.title") }), h("p", { class: "hint", text: t("common.unavailable") }));
    return;
  }
  const thresholds = h("input", { id: "al-thresholds", name: "thresholds", autocomplete: "off", value: (current.thresholds || []).join(", "), placeholder: "50, 80, 100" });
  const webhook = h("input", { id: "al-webhook_url", name: "webhook_url", type: "url", inputmode: "url", autocomplete: "off", value: current.webhook_url || "", placeholder: "https://example.com/hooks/sluice" });
  const form = h(
    "form",
    { class: "card", id: "alerts-form", novalidate: true },
    formError("al-err-form"),
    field(t("alerts.thresholds"), thresholds, h("p", { class: "hint", text: t("alerts.thresholds_hint") }), errorSlot("thresholds", "al-")),
    field(t("alerts.webhook"), webhook, errorSlot("webhook_url", "al-")),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", id: "al-rotate", text: t("alerts.rotate") }),
      h("button", { type: "submit", id: "al-submit", text: t("action.save") }),
    ),
  );
  const numbers = () => thresholds.value.split(/[\s,，]+/).filter(Boolean);
  const showSecret = (answer) => {
    if (answer && answer.webhook_secret) showKeys([{ label: t("alerts.secret"), name: "webhook_secret", key: answer.webhook_secret }], { title: t("alerts.secret") });
  };
  submitForm(form, {
    thresholds: () => (numbers().every((n) => /^\d{1,3}$/.test(n) && Number(n) >= 1 && Number(n) <= 100) ? null : t("validate.range", { min: 1, max: 100 })),
    webhook_url: () => (!webhook.value.trim() || /^https?:\/\/\S+$/.test(webhook.value.trim()) ? null : t("validate.url")),
  }, async () => {
    // A PUT replaces the settings: keep the targets this page does not edit (set by the API).
    const kept = Object.fromEntries(["sns_topic_arn", "event_bus"].filter((name) => current[name]).map((name) => [name, current[name]]));
    const body = { thresholds: numbers().map(Number), webhook_url: webhook.value.trim() || null, ...kept };
    const answer = await api("PUT", "/account/alerts", { body, scoped: true });
    toast(t("toast.saved"));
    showSecret(answer);
  });
  form.querySelector("#al-rotate").addEventListener(
    "click",
    guarded(async () => showSecret(await api("POST", "/account/alerts/rotate-secret", { scoped: true })), message.show),
  );
  view.append(h("h1", { text: t("alerts.title") }), h("p", { class: "hint", text: t("alerts.hint") }), message.element, form);
}
