// Short messages for people: notifications from the server, and what an action did or why it
// was refused. Toasts are announced politely; errors assertively.

import { h } from "./dom.js";

const SHOWN_MS = 6000;
const ERROR_SHOWN_MS = 12000;
const MOST_SHOWN = 3; // older toasts make way, so a burst never covers the board
const LINES_PER_TOAST = 3;

function show(regionId, className, content, shownMs) {
  const region = document.getElementById(regionId);
  const close = h("button.ghost.small", { type: "button", "aria-label": "Dismiss", text: "✕" });
  const toast = h(`div.toast.${className}`, {}, h("div", {}, content), close);
  const remove = () => toast.remove();
  close.addEventListener("click", remove);
  region.append(toast);
  while (region.children.length > MOST_SHOWN) region.firstElementChild.remove();
  setTimeout(remove, shownMs);
  return toast;
}

function line({ message, href }) {
  return href ? h("a", { href, text: message }) : h("span", { text: message });
}

export function toast(message, href = null) {
  return show("toasts", "info", line({ message, href }), SHOWN_MS);
}

// One toast for a batch of notifications: the first few, and how many more.
export function toastAll(entries) {
  const shown = entries.slice(0, LINES_PER_TOAST).map((entry) => h("div", {}, line(entry)));
  const more = entries.length - shown.length;
  if (more > 0) shown.push(h("div.muted", { text: `and ${more} more` }));
  return show("toasts", "info", shown, SHOWN_MS);
}

function alertError(message) {
  return show("alerts", "error", h("span", { text: message }), ERROR_SHOWN_MS);
}

// Runs `action`, showing its error (the API's message says why) instead of throwing.
export async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    alertError(error.message);
    return undefined;
  }
}
