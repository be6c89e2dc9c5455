// Modal dialogs: the access token, a new item, and a question with a one-line answer.

import { post, setToken } from "./api.js";
import { h } from "./dom.js";
import { toast } from "./notify.js";
import { settings } from "./settings.js";
import { putItem } from "./store.js";

for (const dialog of document.querySelectorAll("dialog")) {
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => dialog.close());
  }
}

let tokenWaiters = [];

// Asks for the access token (once, however many requests were refused) and resolves when one
// was entered; `reason` is the server's own word on where to find it.
export function askForToken(reason) {
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-reason").textContent = reason;
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

// Without a token there is nothing to show: the dialog stays until one is given.
document
  .getElementById("token-dialog")
  .addEventListener("cancel", (event) => event.preventDefault());

document.getElementById("token-form").addEventListener("submit", () => {
  const input = document.getElementById("token-input");
  setToken(input.value);
  input.value = "";
  const waiters = tokenWaiters;
  tokenWaiters = [];
  for (const resolve of waiters) resolve();
});

// A token that was refused again says so the next time the dialog opens.
export function tokenRefused(message) {
  const error = document.getElementById("token-error");
  error.textContent = message;
  error.hidden = false;
}

const newItemForm = document.getElementById("new-item-form");
const kindSelect = document.getElementById("new-kind");
const qaSelect = document.getElementById("new-qa");
kindSelect.append(...settings.kinds.map((kind) => h("option", { value: kind, text: kind })));
qaSelect.append(...settings.qa_modes.map((mode) => h("option", { value: mode, text: mode })));

export function openNewItem() {
  newItemForm.reset();
  document.getElementById("new-item-error").hidden = true;
  document.getElementById("new-item-dialog").showModal();
  document.getElementById("new-title").focus();
}

newItemForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(newItemForm);
  const dependsOn = String(form.get("depends_on"))
    .split(/[\s,#]+/)
    .filter(Boolean)
    .map(Number);
  const error = document.getElementById("new-item-error");
  if (dependsOn.some((number) => !Number.isInteger(number) || number < 1)) {
    error.textContent = "Depends on: item numbers, separated by commas (e.g. 3, 7)";
    error.hidden = false;
    return;
  }
  try {
    const item = await post("/api/items", {
      title: String(form.get("title")).trim(),
      kind: form.get("kind"),
      body: String(form.get("body")),
      depends_on: dependsOn,
      qa: form.get("qa") || null,
    });
    putItem(item);
    document.getElementById("new-item-dialog").close();
    toast(`Added #${item.number} to the backlog`, `/board/items/${item.number}`);
  } catch (problem) {
    error.textContent = problem.message;
    error.hidden = false;
  }
});

// A question answered with one line of text; resolves to the answer, or null if cancelled.
export function ask(question, { placeholder = "", confirm = "OK" } = {}) {
  const input = h("input", { type: "text", required: true, placeholder, "aria-label": question });
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { text: question }),
    input,
    h(
      "div.actions",
      {},
      h("button", { type: "button", value: "", text: "Cancel", onclick: () => dialog.close("") }),
      h("button.primary", { type: "submit", text: confirm }),
    ),
  );
  const dialog = h("dialog.dialog", {}, form);
  document.body.append(dialog);
  return new Promise((resolve) => {
    form.addEventListener("submit", () => dialog.close("ok"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok" ? input.value.trim() : null);
    });
    dialog.showModal();
  });
}
