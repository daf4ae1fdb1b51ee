// Small DOM helpers. Every string from the API or the user is inserted as text (text nodes,
// textContent, attribute values), never parsed as HTML.

import { errorText, t } from "./i18n.js";

const PROPERTIES = new Set(["value", "checked", "disabled", "hidden", "selected", "readOnly"]);

export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = String(value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2).toLowerCase(), value);
    else if (PROPERTIES.has(name)) element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

// A labelled control: the label's ``for`` points at the control's id; ``required`` marks it
// (a visible asterisk, and aria-required on the control).
export function field(labelText, control, ...extra) {
  const required = control.dataset?.required === "true";
  if (required) control.setAttribute("aria-required", "true");
  const label = h(
    "label",
    { for: control.id },
    labelText,
    required ? h("span", { class: "required", "aria-hidden": "true", text: " *" }) : null,
  );
  return h("div", { class: "field" }, label, control, extra);
}

// Where the message for ``name`` goes; ``prefix`` keeps ids unique across forms.
export function errorSlot(name, prefix = "") {
  const id = `${prefix}err-${name}`;
  return h("p", { class: "field-error", id, "data-error-for": name, role: "alert", hidden: true });
}

// The form-wide message, for errors that name no field (or a field the form does not have).
export function formError(id) {
  return h("p", { class: "form-error", role: "alert", "data-error-for": "form", id, hidden: true });
}

// A table cell that turns into a labelled line of a card on narrow screens (see the CSS).
export function cell(label, ...content) {
  return h("td", { "data-label": label }, h("div", { class: "cell" }, content));
}

// ``columns``: names, or {label, sort, class} for a heading that sorts the rows when clicked.
export function table(id, bodyId, columns, onSort = null) {
  const body = h("tbody", { id: bodyId });
  const headings = columns.map((column) => {
    const spec = typeof column === "string" ? { label: column } : column;
    const th = h("th", { scope: "col", class: spec.class || null });
    if (spec.sort && onSort) {
      const button = h("button", {
        type: "button",
        class: "sort",
        "data-sort": spec.sort,
        text: spec.label,
      });
      button.addEventListener("click", () => onSort(spec.sort, th));
      th.append(button);
    } else if (spec.node) th.append(spec.node);
    else th.textContent = spec.label;
    return th;
  });
  const list = h("table", { class: "list", id }, h("thead", {}, h("tr", {}, headings)), body);
  return { body, element: h("div", { class: "table-wrap" }, list), headings };
}

export function emptyRow(columns, text) {
  return h("tr", {}, h("td", { colspan: columns, class: "empty", text }));
}

// Cursor paging: the cursor of every page seen is kept, so "Previous" needs nothing from the
// server. ``load`` reads ``pager.cursor()`` and reports the answer's ``next_cursor`` back.
export function cursorPager(prefix, load, report) {
  const state = { cursors: [null], index: 0 };
  const button = (suffix, text) =>
    h("button", { type: "button", class: "secondary", id: `${prefix}-${suffix}`, text, disabled: true });
  const prev = button("prev", t("pager.previous"));
  const next = button("next", t("pager.next"));
  const label = h("span", { class: "page-label", id: `${prefix}-page`, "aria-live": "polite" });
  const go = (step) =>
    guarded(async () => {
      state.index = Math.max(0, state.index + step);
      await load();
    }, report);
  prev.addEventListener("click", go(-1));
  next.addEventListener("click", go(1));
  return {
    element: h("div", { class: "pager" }, prev, label, next),
    cursor: () => state.cursors[state.index],
    restart() {
      state.cursors = [null];
      state.index = 0;
    },
    loaded(nextCursor) {
      state.cursors[state.index + 1] = nextCursor;
      prev.disabled = state.index === 0;
      next.disabled = !nextCursor;
      label.textContent = t("pager.page", { n: state.index + 1 });
    },
  };
}

let toastTimer = null;

export function toast(message) {
  const element = document.getElementById("toast");
  element.textContent = message;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    element.hidden = true;
  }, 4000);
}

// Event handlers are async; report their failures in the page instead of as uncaught errors.
export function guarded(handler, report = (error) => toast(errorText(error))) {
  return async (event) => {
    try {
      await handler(event);
    } catch (error) {
      report(error);
    }
  };
}

// A message shown in a page's alert line (hidden while empty).
export function alertLine(id = null) {
  const element = h("p", { class: "form-error", role: "alert", id, hidden: true });
  return {
    element,
    show(error) {
      element.textContent = typeof error === "string" ? error : errorText(error);
      element.hidden = false;
    },
    hide() {
      element.hidden = true;
      element.textContent = "";
    },
  };
}

export function splitList(text) {
  return String(text || "")
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter(Boolean);
}

export function tokenIdFromKey(key) {
  const match = /^sk-([A-Za-z0-9]{16})[A-Za-z0-9]{32}$/.exec(String(key || "").trim());
  return match ? match[1] : null;
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, [data-error-for='form']")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    control.removeAttribute("aria-describedby");
  }
}

function controlFor(form, name) {
  return (
    form.querySelector(`[name="${CSS.escape(name)}"]:not([type="radio"])`) ||
    form.querySelector(`[name="${CSS.escape(name)}"]`)
  );
}

// Every error at once, each beside its field: ``errors`` maps a field's name to its message
// (the name "form" is the form-wide line). The first invalid control gets the focus.
export function showErrors(form, errors) {
  clearErrors(form);
  let first = null;
  for (const [name, message] of Object.entries(errors || {})) {
    const aliased = (form.errorAliases || {})[name] || name;
    const slot =
      form.querySelector(`.field-error[data-error-for="${CSS.escape(aliased)}"]`) ||
      form.querySelector('[data-error-for="form"]');
    slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
    slot.hidden = false;
    const control = controlFor(form, name) || controlFor(form, aliased);
    if (control && slot.dataset.errorFor !== "form") {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", slot.id);
      first = first || control;
    }
  }
  if (first) first.focus();
  return Object.keys(errors || {}).length > 0;
}

// An API error beside the field its ``param`` names ("allow_ips.1" -> allow_ips), in the
// console's words when its code is known.
export function showApiError(form, error) {
  const param = error?.param ? String(error.param).split(".")[0] : "form";
  showErrors(form, { [param]: errorText(error) });
}

// Run ``rules`` (name -> () => message or null) and show every failure at once; also re-check
// a field as soon as it changes, so its message goes away when it is fixed.
export function validator(form, rules) {
  const check = () => {
    const errors = {};
    for (const [name, rule] of Object.entries(rules)) {
      const message = rule();
      if (message) errors[name] = message;
    }
    return errors;
  };
  let shown = false;
  form.addEventListener("input", () => {
    if (shown) showErrors(form, check());
  });
  return () => {
    const errors = check();
    shown = showErrors(form, errors);
    return !shown;
  };
}

// Submit through the validator, then ``action`` (the API call): every field's error appears
// beside it, whether the console's own check or the server's answer found it.
export function submitForm(form, rules, action) {
  const valid = validator(form, rules);
  form.addEventListener(
    "submit",
    guarded(
      async (event) => {
        event.preventDefault();
        if (!valid()) return;
        await action();
      },
      (error) => showApiError(form, error),
    ),
  );
}

// A file the browser saves: CSV text as a Blob download (no server round trip).
export function download(filename, text, type = "text/csv;charset=utf-8") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  // A leading = + - @ would run as a formula in a spreadsheet: quote it as text.
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csv(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

export function clipboardAvailable() {
  return Boolean(window.isSecureContext && navigator.clipboard && navigator.clipboard.writeText);
}

// Copy text; resolves to false when the browser refuses (the caller then offers selection).
export async function copyText(text) {
  if (!clipboardAvailable()) return false;
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

// A small "Copy" button for a value shown next to it.
export function copyButton(getText, label, id = null) {
  const button = h("button", { type: "button", class: "secondary copy", id, text: t("action.copy"), "aria-label": label });
  button.addEventListener("click", async () => {
    if (await copyText(getText())) {
      button.textContent = t("action.copied");
      toast(t("toast.copied"));
    } else toast(t("toast.copy_refused"));
  });
  return button;
}
