// The board's entry point: the token, the one live connection, the views and their addresses,
// the theme.

import { ApiError, api, eventsUrl, hasToken } from "./api.js";
import { boardView } from "./board.js";
import { startConsole } from "./commands.js";
import { askForToken, tokenRefused } from "./dialogs.js";
import { h } from "./dom.js";
import { Live } from "./live.js";
import { toastAll } from "./notify.js";
import { startPermissions } from "./permissions.js";
import { applyEvent, reload, subscribe } from "./store.js";

const main = document.getElementById("main");

// ---- views and addresses -----------------------------------------------------------------

// The board comes with the page; the other views' modules are loaded when first shown.
const ROUTES = [
  [/^\/$/, async (root) => boardView(root)],
  [
    /^\/board\/items\/(\d+)$/,
    async (root, number) => (await import("./item.js")).itemView(root, Number(number)),
  ],
  [/^\/board\/costs$/, async (root) => (await import("./costs.js")).costsView(root)],
  [/^\/board\/nodes$/, async (root) => (await import("./nodes.js")).nodesView(root)],
];

const NOT_FOUND = {
  title: "Not found",
  unmount() {},
};

let view = null;
let showing = 0; // counts views asked for, so that a slow module never shows a view left already

async function showView() {
  const ticket = ++showing;
  view?.unmount();
  view = null;
  // Each view fills its own element: what a view still finishes after it was left (a slow
  // request) lands in a detached element, never in the next view.
  const root = h("div.view");
  main.replaceChildren(root);
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  const shown = route ? await route[1](root, ...route[0].exec(path).slice(1)) : NOT_FOUND;
  if (ticket !== showing) {
    shown.unmount();
    return;
  }
  view = shown;
  if (!route) {
    root.append(
      h(
        "div.panel.empty-page",
        {},
        h("h1", { text: "Nothing here" }),
        h("a", { href: "/", text: "← Back to the board" }),
      ),
    );
  }
  document.title = `${view.title} · huskies`;
  const section = path === "/" ? "board" : path.split("/")[2];
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function navigate(href) {
  history.pushState(null, "", href);
  showView();
  main.focus({ preventScroll: true });
  scrollTo(0, 0);
}

// Links within the board change the view without loading the page again.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href);
  const ours =
    url.pathname === "/" ||
    (url.pathname.startsWith("/board/") && !url.pathname.startsWith("/board/static/"));
  if (url.origin !== location.origin || !ours) return;
  event.preventDefault();
  if (url.pathname !== location.pathname) navigate(url.pathname);
});
addEventListener("popstate", showView);

// ---- theme: the system's, or the one chosen -----------------------------------------------

const THEME_KEY = "huskies.theme";
const THEMES = ["system", "light", "dark"];
const themeButton = document.getElementById("theme-toggle");

function applyTheme(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  themeButton.querySelector(".theme-label").textContent = ` ${theme}`;
  themeButton.setAttribute("aria-label", `Theme: ${theme} (change)`);
  themeButton.dataset.theme = theme;
}

applyTheme(localStorage.getItem(THEME_KEY) ?? "system");
themeButton.addEventListener("click", () => {
  const next = THEMES[(THEMES.indexOf(themeButton.dataset.theme) + 1) % THEMES.length];
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
});

// ---- the live connection ------------------------------------------------------------------

const connection = document.getElementById("connection");
const CONNECTION_TEXT = { live: "Live", connecting: "Connecting…", offline: "Reconnecting…" };

function showConnection(state) {
  connection.dataset.state = state;
  connection.querySelector(".connection-text").textContent = CONNECTION_TEXT[state];
}

// Why the event stream would not open: the server is down (throws), or wants a token (asks
// for it, and resolves true once one was given).
async function unreachable() {
  try {
    await api("/api/health");
    return false;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    if (hasToken()) tokenRefused("The server did not accept that token.");
    await askForToken(error.message);
    return true;
  }
}

const live = new Live(eventsUrl, {
  unreachable,
  onOpen: reload,
  onEvent: applyEvent,
  onState: showConnection,
});

subscribe((change) => {
  if (change.type !== "notification") return;
  toastAll(
    change.messages.map(({ message, number }) => ({
      message,
      href: number ? `/board/items/${number}` : null,
    })),
  );
});

startConsole();
startPermissions();
showView();
live.connect();
