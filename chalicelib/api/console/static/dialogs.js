// Modal dialogs built on <dialog>: the one-time key display, confirmations and the forms other
// pages open. Every dialog focuses its first field, keeps Tab inside itself and gives the focus
// back to what opened it when it closes.
//
// window.confirm/alert are never used: they block the page, cannot be styled, and a page that
// never opens a native dialog makes injected alert() calls easy to notice.

import { relayBaseUrl } from "./api.js";
import { clear, clipboardAvailable, copyText, csv, download, h, toast } from "./dom.js";
import { t } from "./i18n.js";
import { testPanel } from "./playground.js";

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), ' +
  'textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(dialog) {
  return [...dialog.querySelectorAll(FOCUSABLE)].filter(
    (element) => !element.closest("[hidden]") && element.getClientRects().length > 0,
  );
}

function trapTab(event) {
  if (event.key !== "Tab") return;
  const items = focusables(event.currentTarget);
  if (!items.length) return;
  const first = items[0];
  const last = items[items.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

// showModal() with focus in, Tab trapped, and focus returned to the opener on close.
export function openModal(dialog, first = null) {
  const opener = document.activeElement;
  if (!dialog.dataset.trapped) {
    dialog.addEventListener("keydown", trapTab);
    dialog.dataset.trapped = "true";
  }
  dialog.addEventListener(
    "close",
    () => {
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
      else document.getElementById("view")?.focus();
    },
    { once: true },
  );
  dialog.showModal();
  const target = first || focusables(dialog)[0];
  if (target) target.focus();
}

function keyRow(entry, index, canCopy, onCopied) {
  const inputId = `new-key-${index}`;
  const input = h("input", {
    id: inputId,
    class: "key-value",
    type: "text",
    readOnly: true,
    value: entry.key,
    spellcheck: "false",
    autocomplete: "off",
    "data-token-id": entry.tokenId || "",
  });
  input.addEventListener("focus", () => input.select());
  const row = h(
    "div",
    { class: "key-row" },
    h("label", { for: inputId, text: entry.label }),
    h("div", { class: "key-line" }, input),
  );
  if (canCopy) {
    const button = h("button", {
      type: "button",
      class: "copy",
      text: t("action.copy"),
      "aria-label": t("keys.copy_label", { label: entry.label }),
    });
    button.addEventListener("click", async () => {
      if (!(await copyText(entry.key))) {
        // Permission refused: fall back to manual selection, as without a secure context.
        input.focus();
        input.select();
        toast(t("toast.copy_refused"));
        return;
      }
      button.textContent = t("action.copied");
      toast(t("toast.key_copied"));
      onCopied();
    });
    row.querySelector(".key-line").append(button);
  }
  return row;
}

export function snippets(baseUrl, key, model = "gpt-4o-mini") {
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Hello!" }] });
  return {
    curl:
      `curl ${baseUrl}/chat/completions \\\n` +
      `  -H "Authorization: Bearer ${key}" \\\n` +
      `  -H "Content-Type: application/json" \\\n` +
      `  -d '${body}'`,
    python:
      "from openai import OpenAI\n\n" +
      `client = OpenAI(base_url="${baseUrl}", api_key="${key}")\n` +
      "reply = client.chat.completions.create(\n" +
      `    model="${model}",\n` +
      '    messages=[{"role": "user", "content": "Hello!"}],\n' +
      ")\nprint(reply.choices[0].message.content)",
    node:
      'import OpenAI from "openai";\n\n' +
      `const client = new OpenAI({ baseURL: "${baseUrl}", apiKey: "${key}" });\n` +
      "const reply = await client.chat.completions.create({\n" +
      `  model: "${model}",\n` +
      '  messages: [{ role: "user", content: "Hello!" }],\n' +
      "});\nconsole.log(reply.choices[0].message.content);",
  };
}

// Base URL with Copy, and the snippets (curl / Python / Node) with the key filled in.
function usagePanel(key, canCopy, onCopied) {
  const baseUrl = relayBaseUrl();
  const codes = snippets(baseUrl, key);
  const base = h("input", { id: "base-url", type: "text", readOnly: true, value: baseUrl });
  const baseLine = h("div", { class: "key-line" }, base);
  const copyInto = (text, button) => async () => {
    if (await copyText(text)) {
      button.textContent = t("action.copied");
      onCopied();
    } else toast(t("toast.copy_refused"));
  };
  if (canCopy) {
    const copy = h("button", { type: "button", class: "secondary copy", id: "copy-base-url", text: t("action.copy"), "aria-label": t("keys.copy_base_url") });
    copy.addEventListener("click", copyInto(baseUrl, copy));
    baseLine.append(copy);
  }
  const code = h("pre", { class: "snippet", id: "snippet", tabindex: "0" }, h("code", { text: codes.curl }));
  const tabs = h("div", { class: "tabs", role: "group", "aria-label": t("keys.snippets") });
  let chosen = "curl";
  for (const [name, label] of [["curl", "curl"], ["python", "Python"], ["node", "Node.js"]]) {
    const tab = h("button", { type: "button", class: "tab secondary", id: `snippet-${name}`, text: label, "aria-pressed": String(name === chosen) });
    tab.addEventListener("click", () => {
      chosen = name;
      code.firstChild.textContent = codes[name];
      for (const other of tabs.children) other.setAttribute("aria-pressed", String(other === tab));
    });
    tabs.append(tab);
  }
  const copySnippet = canCopy
    ? h("button", { type: "button", class: "secondary", id: "copy-snippet", text: t("keys.copy_snippet") })
    : null;
  if (copySnippet) copySnippet.addEventListener("click", () => copyInto(codes[chosen], copySnippet)());
  return h(
    "section",
    { class: "key-usage", "aria-labelledby": "key-usage-title" },
    h("h3", { id: "key-usage-title", text: t("keys.use_it") }),
    h("div", { class: "field" }, h("label", { for: "base-url", text: t("keys.base_url") }), baseLine),
    tabs,
    code,
    copySnippet ? h("div", { class: "actions" }, copySnippet) : null,
  );
}

// entries: [{label, key, tokenId?, name?}]. ``testable`` offers the chat test for the first sk-
// key. Closing before anything was copied or downloaded asks first: the keys cannot be shown
// again.
export function showKeys(entries, { title = null, testable = false } = {}) {
  const dialog = document.getElementById("key-dialog");
  const list = clear(document.getElementById("key-list"));
  const extras = clear(document.getElementById("key-extras"));
  const testSection = document.getElementById("key-test");
  const testSlot = clear(document.getElementById("key-test-slot"));
  document.getElementById("key-dialog-title").textContent = title || t("keys.new_key");
  const canCopy = clipboardAvailable();
  let saved = false;
  const onCopied = () => {
    saved = true;
  };
  if (!canCopy) {
    list.append(h("p", { class: "hint", id: "select-hint", text: t("keys.select_hint") }));
  }
  entries.forEach((entry, index) => list.append(keyRow(entry, index, canCopy, onCopied)));
  const bulk = h("div", { class: "actions bulk-keys" });
  if (entries.length > 1 && canCopy) {
    const all = h("button", { type: "button", class: "secondary", id: "copy-all", text: t("keys.copy_all") });
    all.addEventListener("click", async () => {
      const text = entries.map((entry) => `${entry.name || entry.label}\t${entry.key}`).join("\n");
      if (await copyText(text)) {
        all.textContent = t("action.copied");
        toast(t("toast.keys_copied", { n: entries.length }));
        onCopied();
      }
    });
    bulk.append(all);
  }
  if (entries.length > 1) {
    const save = h("button", { type: "button", class: "secondary", id: "download-keys", text: t("keys.download_csv") });
    save.addEventListener("click", () => {
      const rows = entries.map((entry) => [entry.name || entry.label, entry.key, entry.tokenId || ""]);
      download("sluice-keys.csv", csv(["name", "key", "token_id"], rows));
      onCopied();
    });
    bulk.append(save);
  }
  if (bulk.childElementCount) list.append(bulk);
  const first = entries.find((entry) => entry.key.startsWith("sk-"));
  if (first) extras.append(usagePanel(first.key, canCopy, onCopied));
  testSection.hidden = !(testable && first);
  if (testable && first) {
    // Nothing is sent with the key until the user asks for the test.
    const panel = testPanel("kt", () => first.key);
    panel.element.hidden = true;
    const start = h("button", { type: "button", id: "key-test-start", class: "secondary", text: t("keys.test") });
    start.addEventListener("click", () => {
      start.hidden = true;
      panel.element.hidden = false;
      panel.loadModels();
    });
    testSlot.append(start, panel.element);
  }
  const closeButton = document.getElementById("key-dialog-close");
  // Forget the secrets once the dialog closes: nothing keeps them in the page afterwards. At
  // once, not only on the "close" event, which the browser fires a task later.
  const forget = () => {
    clear(list);
    clear(extras);
    clear(testSlot);
  };
  const askThenClose = async (event) => {
    event.preventDefault();
    if (saved || (await confirmAction(t("keys.close_unsaved"), t("keys.close_anyway")))) {
      dialog.close();
      forget();
    }
  };
  // Escape (the dialog's cancel) and the close button both ask while nothing was saved.
  const onCancel = (event) => askThenClose(event);
  const onClick = (event) => askThenClose(event);
  dialog.addEventListener("cancel", onCancel);
  closeButton.addEventListener("click", onClick);
  // However the dialog closes.
  dialog.addEventListener(
    "close",
    () => {
      dialog.removeEventListener("cancel", onCancel);
      closeButton.removeEventListener("click", onClick);
      forget();
    },
    { once: true },
  );
  const firstInput = list.querySelector(".key-value");
  openModal(dialog, firstInput);
  if (firstInput) firstInput.select();
}

export function confirmAction(message, okLabel = null) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = t("confirm.title");
  document.getElementById("confirm-message").textContent = message;
  document.getElementById("confirm-ok").textContent = okLabel || t("action.confirm");
  document.getElementById("confirm-cancel").textContent = t("action.cancel");
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    openModal(dialog, document.getElementById("confirm-cancel"));
  });
}

// A dialog holding ``form`` (built by the caller), removed from the page once closed.
export function formDialog(id, title, form) {
  const cancel = h("button", { type: "button", class: "secondary", id: `${id}-cancel`, text: t("action.cancel") });
  const heading = h("h2", { id: `${id}-title`, text: title });
  const dialog = h("dialog", { id, "aria-labelledby": `${id}-title` }, h("div", { class: "dialog-body" }, heading, form));
  form.querySelector(".actions")?.prepend(cancel);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  const firstField = form.querySelector("input:not([type=hidden]):not([type=radio]):not([type=checkbox]), select, textarea");
  openModal(dialog, firstField);
  return dialog;
}
