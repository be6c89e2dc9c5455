// Agents' requests to use a tool, waiting for a person: a banner above every view, with
// Allow and Deny, until each is answered here, elsewhere, or times out.

import { post } from "./api.js";
import { ask } from "./dialogs.js";
import { ago, h, replaceChildren } from "./dom.js";
import { attempt, toast } from "./notify.js";
import { store, subscribe } from "./store.js";

const banner = document.getElementById("permissions");

function inputSummary(input) {
  const text = typeof input?.command === "string" ? input.command : JSON.stringify(input ?? {});
  return text.length > 240 ? `${text.slice(0, 240)}…` : text;
}

function answer(request, decision, message = "") {
  return attempt(async () => {
    await post(`/api/permissions/${request.id}`, { decision, message });
    store.permissions.delete(request.id);
    render();
  });
}

function render() {
  const requests = [...store.permissions.values()].sort((a, b) => a.asked_at - b.asked_at);
  banner.hidden = requests.length === 0;
  replaceChildren(
    banner,
    requests.map((request) => {
      const who = request.agent ?? "A client";
      const on = request.number
        ? h("a", { href: `/board/items/${request.number}`, text: `#${request.number}` })
        : null;
      return h(
        "div.permission",
        { "data-request": request.id },
        h("span.permission-icon", { "aria-hidden": "true", text: "⚠" }),
        h(
          "div.permission-text",
          {},
          h("strong", { text: who }),
          on ? [" on ", on] : null,
          " asks to use ",
          h("code", { text: request.tool }),
          h(
            "div.muted.small",
            {},
            h("code", { text: inputSummary(request.input) }),
            ` · denied ${ago(request.expires_at)} unless answered`,
          ),
        ),
        h("button.primary", {
          type: "button",
          text: "Allow",
          onclick: () => answer(request, "allow"),
        }),
        h("button.danger", {
          type: "button",
          text: "Deny",
          onclick: () => answer(request, "deny"),
        }),
        h("button.ghost.small", {
          type: "button",
          text: "Deny with a reason…",
          onclick: async () => {
            const reason = await ask(`Why may ${who} not use ${request.tool}?`, {
              confirm: "Deny",
            });
            if (reason) await answer(request, "deny", reason);
          },
        }),
      );
    }),
  );
}

const COUNTDOWN_MS = 15000;

export function startPermissions() {
  setInterval(() => banner.hidden || render(), COUNTDOWN_MS);
  subscribe((change) => {
    if (change.type !== "permissions") return;
    render();
    const answered = change.answered;
    if (answered && answered.by !== "person") {
      const verdict = answered.decision === "allow" ? "allowed" : "denied";
      toast(`A permission request was ${verdict} (${answered.by})`);
    }
  });
}
