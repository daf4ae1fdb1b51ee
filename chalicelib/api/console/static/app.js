// The console shell: sign-in, navigation (hash routes, so no page ever needs a server route of
// its own), the header (who is signed in, language, theme) and the page router.
//
// Routes: #/signin, #/tokens, #/tokens/new, #/tokens/<id>/edit, #/logs, #/usage, #/playground,
// #/alerts, #/audit; admin: #/accounts, #/channels, #/prices, #/groups, #/keys. Query
// parameters after the route (#/tokens?account_id=…) carry only ids, never a key.

import * as accounts from "./accounts.js";
import * as admin from "./admin.js";
import { api, call, localError, onKeyRefused, session } from "./api.js";
import { clear, field, guarded, h, toast } from "./dom.js";
import * as extra from "./extra_pages.js";
import { usd } from "./format.js";
import { LANGUAGES, errorText, lang, setLang, t, translateStatic } from "./i18n.js";
import * as logs from "./logs.js";
import * as operatorKeys from "./operator_keys.js";
import * as playground from "./playground.js";
import { THEMES, setTheme, theme } from "./theme.js";
import * as tokenForm from "./token_form.js";
import * as tokens from "./tokens.js";
import * as usage from "./usage.js";

const view = document.getElementById("view");
let renderCount = 0;

function parseRoute() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

function go(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

// Who the key belongs to: a management key (mk-) names its account; anything else must be the
// admin key or an operator key (ops-), which signs in here only if it may list accounts
// (accounts:read); a page outside its scopes then shows the API's 403.
async function identify(key) {
  if (key.startsWith("mk-")) {
    const response = await call("GET", "/account", { key });
    return { admin: false, account: response.data };
  }
  await call("GET", "/admin/accounts", { key, query: { limit: 1 } });
  return { admin: true, account: null };
}

function renderSignIn(container, notice) {
  const input = h("input", {
    id: "signin-key",
    name: "key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "mk-…",
    "data-required": "true",
  });
  const error = h("p", {
    class: "form-error",
    id: "signin-error",
    role: "alert",
    hidden: !notice,
    text: notice || "",
  });
  const form = h(
    "form",
    { class: "card signin", id: "signin-form", novalidate: true },
    h("h1", { text: t("signin.title") }),
    h("p", { class: "hint", text: t("signin.hint") }),
    field(t("signin.key"), input),
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "signin-submit", text: t("signin.submit") })),
  );
  form.addEventListener(
    "submit",
    guarded(
      async (event) => {
        event.preventDefault();
        const key = input.value.trim();
        if (!key) throw localError(t("signin.empty"));
        const who = await identify(key);
        session.signIn(key);
        input.value = "";
        go(who.admin ? "#/accounts" : "#/tokens");
      },
      (failure) => {
        error.textContent = errorText(failure);
        error.hidden = false;
      },
    ),
  );
  container.append(form);
  input.focus();
}

// Pages whose API another release may not have yet: shown once /openapi.json lists their path.
let optionalPaths = null;
async function optionalRoutes() {
  if (optionalPaths) return optionalPaths;
  try {
    const document_ = (await call("GET", "/openapi.json")).data || {};
    optionalPaths = new Set(Object.keys(document_.paths || {}));
  } catch {
    optionalPaths = new Set();
  }
  return optionalPaths;
}

const OPTIONAL = { alerts: "/account/alerts", audit: "/audit" };

export function hideOptional(page) {
  const link = document.querySelector(`#nav a[data-page="${page}"]`);
  if (link) link.hidden = true;
  optionalPaths?.delete(OPTIONAL[page]);
}

async function updateHeader() {
  const signedIn = Boolean(session.key);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  for (const link of document.querySelectorAll("[data-admin-only]")) link.hidden = !session.isAdmin;
  const route = parseRoute().parts[0] || (session.isAdmin ? "accounts" : "tokens");
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === route) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const whoami = document.getElementById("whoami");
  if (!signedIn) {
    whoami.textContent = "";
    return;
  }
  const paths = await optionalRoutes();
  for (const [page, path] of Object.entries(OPTIONAL)) {
    const link = document.querySelector(`#nav a[data-page="${page}"]`);
    // The audit log is everyone's (an account sees its own records); alerts are an account's.
    const audience = page === "audit" || !session.isAdmin;
    link.hidden = !(audience && paths.has(path));
  }
  try {
    if (session.isAdmin) {
      if (!session.accountId) {
        whoami.textContent = t("header.admin");
        return;
      }
      const account = await api("GET", `/admin/accounts/${encodeURIComponent(session.accountId)}`);
      whoami.textContent = t("header.admin_managing", { name: account.name });
      return;
    }
    const account = (await call("GET", "/account", { key: session.key })).data;
    const balance =
      account.quota_units === null
        ? t("money.unlimited")
        : t("money.left", { amount: usd(account.remaining_usd) });
    whoami.textContent = `${account.name} · ${balance}`;
  } catch {
    whoami.textContent = session.isAdmin ? t("header.admin") : "";
  }
}

const ACCOUNT_PAGES = new Set(["tokens", "logs", "usage", "alerts"]);
const ADMIN_PAGES = {
  accounts: (container) => accounts.render(container),
  channels: (container) => admin.renderChannels(container),
  prices: (container) => admin.renderPrices(container),
  groups: (container) => admin.renderGroups(container),
  keys: (container) => operatorKeys.render(container),
};

async function renderPage(container, parts, params) {
  const page = parts[0] || (session.isAdmin ? "accounts" : "tokens");
  if (session.isAdmin && params.get("account_id")) session.selectAccount(params.get("account_id"));
  if (ADMIN_PAGES[page]) {
    if (!session.isAdmin) return go("#/tokens");
    return ADMIN_PAGES[page](container, params);
  }
  if (page === "playground") return playground.render(container);
  if (page === "audit") return extra.renderAudit(container, params, () => hideOptional("audit"));
  if (!ACCOUNT_PAGES.has(page)) return go(session.isAdmin ? "#/accounts" : "#/tokens");
  if (session.isAdmin) {
    container.append(await accounts.accountPicker(() => render()));
    if (!session.accountId) {
      container.append(h("p", { class: "hint", text: t("accounts.choose_hint") }));
      return undefined;
    }
  }
  if (page === "logs") return logs.render(container, params);
  if (page === "usage") return usage.render(container);
  if (page === "alerts") return extra.renderAlerts(container, () => hideOptional("alerts"));
  if (parts[1] === "new") return tokenForm.renderCreate(container);
  if (parts[1] && parts[2] === "edit") return tokenForm.renderEdit(container, parts[1]);
  return tokens.render(container, params);
}

async function render(notice) {
  const generation = ++renderCount;
  const container = h("div", { class: "page" });
  clear(view).append(container);
  const { parts, params } = parseRoute();
  translateStatic();
  updateHeader();
  if (!session.key) {
    renderSignIn(container, typeof notice === "string" ? notice : null);
    return;
  }
  try {
    await renderPage(container, parts, params);
  } catch (error) {
    if (generation !== renderCount) return;
    container.append(h("p", { class: "form-error", role: "alert", text: errorText(error) }));
  }
}

function preferences() {
  const language = document.getElementById("lang-switch");
  const themes = document.getElementById("theme-switch");
  const fill = () => {
    clear(language).append(
      ...LANGUAGES.map(([code, name]) => h("option", { value: code, text: name, selected: code === lang() })),
    );
    clear(themes).append(
      ...THEMES.map((name) => h("option", { value: name, text: t(`theme.${name}`), selected: name === theme() })),
    );
  };
  fill();
  language.addEventListener("change", () => {
    setLang(language.value);
    fill();
    render();
  });
  themes.addEventListener("change", () => setTheme(themes.value));
}

onKeyRefused((error) => {
  session.signOut();
  render(t("signin.signed_out_because", { reason: errorText(error) }));
});

document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  toast(t("toast.signed_out"));
  if (window.location.hash === "#/signin") render();
  else window.location.hash = "#/signin";
});

window.addEventListener("hashchange", () => render());
preferences();
render();

