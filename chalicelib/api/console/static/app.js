// The console shell: sign-in, navigation (hash routes, so no page ever needs a server route of
// its own) and the header showing who is signed in.
//
// Routes: #/signin, #/tokens, #/tokens/new, #/tokens/<id>/edit, #/logs, #/playground,
// #/accounts (admin). Query parameters after the route (#/tokens?account_id=…) carry only ids,
// never a key.

import * as accounts from "./accounts.js";
import { ApiError, call, onKeyRefused, session } from "./api.js";
import { clear, field, guarded, h, toast, trimUsd } from "./dom.js";
import * as logs from "./logs.js";
import * as playground from "./playground.js";
import * as tokenForm from "./token_form.js";
import * as tokens from "./tokens.js";

const view = document.getElementById("view");
const SIGN_IN_HINT =
  "Use your account's management key (mk-…), or the operator's admin key. It is kept in this " +
  "browser tab only and forgotten when you sign out or close the tab.";
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
    h("h1", { text: "Sign in" }),
    h("p", { class: "hint", text: SIGN_IN_HINT }),
    field("Management key or admin key", input),
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", id: "signin-submit", text: "Sign in" }),
    ),
  );
  form.addEventListener(
    "submit",
    guarded(
      async (event) => {
        event.preventDefault();
        const key = input.value.trim();
        if (!key) throw new ApiError(0, { error: { message: "Enter a key." } });
        const who = await identify(key);
        session.signIn(key);
        input.value = "";
        go(who.admin ? "#/accounts" : "#/tokens");
      },
      (failure) => {
        error.textContent = failure.message;
        error.hidden = false;
      },
    ),
  );
  container.append(form);
  input.focus();
}

async function updateHeader() {
  const signedIn = Boolean(session.key);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  for (const link of document.querySelectorAll("[data-admin-only]")) link.hidden = !session.isAdmin;
  const route = parseRoute().parts[0] || "tokens";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === route) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const whoami = document.getElementById("whoami");
  if (!signedIn) {
    whoami.textContent = "";
    return;
  }
  if (session.isAdmin) {
    whoami.textContent = session.accountId ? `Admin · account ${session.accountId}` : "Admin";
    return;
  }
  try {
    const account = (await call("GET", "/account", { key: session.key })).data;
    const balance =
      account.quota_units === null ? "unlimited" : `${trimUsd(account.remaining_usd)} left`;
    whoami.textContent = `${account.name} · ${balance}`;
  } catch {
    whoami.textContent = "";
  }
}

const ACCOUNT_PAGES = new Set(["tokens", "logs"]);

async function renderPage(container, parts, params) {
  const page = parts[0] || (session.isAdmin ? "accounts" : "tokens");
  if (session.isAdmin && params.get("account_id")) session.selectAccount(params.get("account_id"));
  if (page === "accounts") {
    if (!session.isAdmin) return go("#/tokens");
    return accounts.render(container);
  }
  if (page === "playground") return playground.render(container);
  if (!ACCOUNT_PAGES.has(page)) return go("#/tokens");
  if (session.isAdmin) {
    container.append(await accounts.accountPicker(() => render()));
    if (!session.accountId) {
      const hint = "Choose an account to see its tokens and logs.";
      container.append(h("p", { class: "hint", text: hint }));
      return undefined;
    }
  }
  if (page === "logs") return logs.render(container, params);
  if (parts[1] === "new") return tokenForm.renderCreate(container);
  if (parts[1] && parts[2] === "edit") return tokenForm.renderEdit(container, parts[1]);
  return tokens.render(container, params);
}

async function render(notice) {
  const generation = ++renderCount;
  const container = h("div", { class: "page" });
  clear(view).append(container);
  const { parts, params } = parseRoute();
  updateHeader();
  if (!session.key) {
    renderSignIn(container, typeof notice === "string" ? notice : null);
    return;
  }
  try {
    await renderPage(container, parts, params);
  } catch (error) {
    if (generation !== renderCount) return;
    container.append(h("p", { class: "form-error", role: "alert", text: error.message }));
  }
}

onKeyRefused((error) => {
  session.signOut();
  render(`Signed out: ${error.message}`);
});

document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  toast("Signed out.");
  if (window.location.hash === "#/signin") render();
  else window.location.hash = "#/signin";
});

window.addEventListener("hashchange", () => render());
render();
