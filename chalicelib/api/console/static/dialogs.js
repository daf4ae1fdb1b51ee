// Modal dialogs built on <dialog>: the one-time key display and confirmations.
//
// window.confirm/alert are never used: they block the page, cannot be styled, and a page that
// never opens a native dialog makes injected alert() calls easy to notice.

import { clear, guarded, h, toast } from "./dom.js";
import { testPanel } from "./playground.js";

export function clipboardAvailable() {
  return Boolean(window.isSecureContext && navigator.clipboard && navigator.clipboard.writeText);
}

function keyRow(entry, index, canCopy) {
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
      text: "Copy",
      "aria-label": `Copy ${entry.label}`,
    });
    button.addEventListener(
      "click",
      guarded(async () => {
        try {
          await navigator.clipboard.writeText(entry.key);
        } catch {
          // Permission refused: fall back to manual selection, as without a secure context.
          input.focus();
          input.select();
          toast("Copying was refused by the browser: select and copy the key.");
          return;
        }
        button.textContent = "Copied";
        toast("Key copied to the clipboard.");
      }),
    );
    row.querySelector(".key-line").append(button);
  }
  return row;
}

// entries: [{label, key, tokenId?}]. ``testable`` offers the chat test for the first sk- key.
export function showKeys(entries, { title = "Your new key", testable = false } = {}) {
  const dialog = document.getElementById("key-dialog");
  const list = clear(document.getElementById("key-list"));
  const testSection = document.getElementById("key-test");
  const testSlot = clear(document.getElementById("key-test-slot"));
  document.getElementById("key-dialog-title").textContent = title;
  const canCopy = clipboardAvailable();
  if (!canCopy) {
    list.append(
      h("p", {
        class: "hint",
        id: "select-hint",
        text: "Copying needs HTTPS, so there is no Copy button here: select and copy the key.",
      }),
    );
  }
  entries.forEach((entry, index) => list.append(keyRow(entry, index, canCopy)));
  const first = entries.find((entry) => entry.key.startsWith("sk-"));
  testSection.hidden = !(testable && first);
  if (testable && first) {
    // Nothing is sent with the key until the user asks for the test.
    const panel = testPanel("kt", () => first.key);
    panel.element.hidden = true;
    const start = h("button", { type: "button", id: "key-test-start", text: "Test this key" });
    start.addEventListener("click", () => {
      start.hidden = true;
      panel.element.hidden = false;
      panel.loadModels();
    });
    testSlot.append(start, panel.element);
  }
  // Forget the secrets once the dialog closes: nothing keeps them in the page afterwards.
  dialog.addEventListener(
    "close",
    () => {
      clear(list);
      clear(testSlot);
    },
    { once: true },
  );
  dialog.showModal();
  const firstInput = list.querySelector(".key-value");
  if (firstInput) {
    firstInput.focus();
    firstInput.select();
  }
}

export function confirmAction(message, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-message").textContent = message;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
