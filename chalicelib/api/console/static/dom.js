// Small DOM and formatting helpers. Every string from the API or the user is inserted as text
// (text nodes, textContent, attribute values), never parsed as HTML.

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

// A labelled control: the label's ``for`` points at the control's id.
export function field(labelText, control, ...extra) {
  const label = h("label", { for: control.id, text: labelText });
  return h("div", { class: "field" }, label, control, extra);
}

// Where the API's message for ``param`` goes; ``prefix`` keeps ids unique across forms.
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

export function table(id, bodyId, columns) {
  const body = h("tbody", { id: bodyId });
  const headings = columns.map((name) => h("th", { scope: "col", text: name }));
  const list = h("table", { class: "list", id }, h("thead", {}, h("tr", {}, headings)), body);
  return { body, element: h("div", { class: "table-wrap" }, list) };
}

// Cursor paging: the cursor of every page seen is kept, so "Previous" needs nothing from the
// server. ``load`` reads ``pager.cursor()`` and reports the answer's ``next_cursor`` back.
export function cursorPager(prefix, load, report) {
  const state = { cursors: [null], index: 0 };
  const button = (suffix, text) =>
    h("button", {
      type: "button",
      class: "secondary",
      id: `${prefix}-${suffix}`,
      text,
      disabled: true,
    });
  const prev = button("prev", "Previous");
  const next = button("next", "Next");
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
      label.textContent = `Page ${state.index + 1}`;
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
export function guarded(handler, report = (error) => toast(error.message)) {
  return async (event) => {
    try {
      await handler(event);
    } catch (error) {
      report(error);
    }
  };
}

// Money: 500,000 units = US$1.00. Exact decimal arithmetic with BigInt, never floats.
export const UNITS_PER_USD = 500000n;

export function usdToUnits(text) {
  const match = /^\s*(\d{1,10})(?:\.(\d{1,12}))?\s*$/.exec(String(text ?? ""));
  if (!match) return { units: null, error: 'Enter an amount such as "1.50".' };
  const fraction = (match[2] || "").padEnd(12, "0");
  const micro = BigInt(match[1]) * 10n ** 12n + BigInt(fraction);
  const scaled = micro * UNITS_PER_USD;
  if (scaled % 10n ** 12n !== 0n) {
    return { units: null, error: "Finer than one unit (US$0.000002)." };
  }
  return { units: scaled / 10n ** 12n, error: null };
}

export function groupDigits(value) {
  return BigInt(value).toLocaleString("en-US");
}

export function unitsToUsd(units) {
  const value = BigInt(units);
  const micro = (value * 1000000n) / UNITS_PER_USD;
  const whole = micro / 1000000n;
  const fraction = (micro % 1000000n).toString().padStart(6, "0");
  return trimUsd(`${whole}.${fraction}`);
}

// "1.500000" -> "$1.50", "0.000034" -> "$0.000034": at least cents, no noise after them.
export function trimUsd(decimal) {
  if (decimal === null || decimal === undefined) return "";
  const [whole, fraction = ""] = String(decimal).split(".");
  let digits = fraction.replace(/0+$/, "");
  if (digits.length < 2) digits = digits.padEnd(2, "0");
  return `$${whole}.${digits}`;
}

export function plainUsd(decimal) {
  return trimUsd(decimal).slice(1);
}

// API times are ISO strings in UTC; show them as UTC without guessing the viewer's zone.
export function formatTime(iso, empty = "never") {
  if (!iso) return empty;
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return match ? `${match[1]} ${match[2]} UTC` : iso;
}

// <input type="datetime-local"> values are read as UTC (the labels say so).
export function localInputToIso(value) {
  if (!value) return null;
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

export function isoToLocalInput(iso) {
  return iso ? iso.slice(0, 16) : "";
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

// Show an API error next to the field its ``param`` names ("allow_ips.1" -> allow_ips); forms
// map params that share one control group through ``form.errorAliases``.
export function showFieldErrors(form, error) {
  for (const slot of form.querySelectorAll(".field-error, [data-error-for='form']")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  if (!error) return;
  const param = error.param ? String(error.param).split(".")[0] : null;
  const name = param ? (form.errorAliases || {})[param] || param : null;
  const fieldSlot =
    name && form.querySelector(`.field-error[data-error-for="${CSS.escape(name)}"]`);
  const slot = fieldSlot || form.querySelector('[data-error-for="form"]');
  slot.textContent = error.message;
  slot.hidden = false;
  if (!fieldSlot) return;
  const control =
    form.querySelector(`[name="${CSS.escape(param)}"]`) ||
    form.querySelector(`[name="${CSS.escape(name)}"]`);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", slot.id);
    control.focus();
  }
}

export function resetInvalid(form) {
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    control.removeAttribute("aria-describedby");
  }
}
