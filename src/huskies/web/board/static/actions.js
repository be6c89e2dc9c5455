// What a person can do to an item from the board: the legal moves, starting and stopping its
// agent, review, unblocking. The same list makes a card's menu and an item page's buttons.

import { post } from "./api.js";
import { ask } from "./dialogs.js";
import { h, label } from "./dom.js";
import { attempt, toast } from "./notify.js";
import { AGENT_STAGE, settings } from "./settings.js";
import { agentStatus, putItem, store } from "./store.js";

// Moves the item; a move the pipeline refuses shows the server's reason.
export function moveItem(item, stage) {
  return attempt(async () => {
    putItem(await post(`/api/items/${item.number}/move`, { stage }));
  });
}

function moveLabel(from, to) {
  if (to === "archived") return from === "done" ? "Archive" : "Abandon (archive)";
  if (to === "backlog") return "Back to backlog";
  if (from === "qa" && to === "coding") return "Send back to coding";
  if (from === "coding" && to === "qa") return "Submit for review";
  if (from === "backlog" && to === "coding") return "Move to coding";
  return `Move to ${label(to)}`;
}

// [{label, run, kind}] for `item`, in the order they are offered.
export function actionsFor(item) {
  const stage = item.stage.name;
  const number = item.number;
  const actions = [];
  const running = agentStatus(item) === "running";
  const startable = store.agents.some((agent) => agent.stage === AGENT_STAGE[stage]);
  if (startable && !running) {
    actions.push({
      label: "Start agent",
      kind: "primary",
      run: () => attempt(async () => toast((await post(`/api/items/${number}/start`, {})).message)),
    });
  }
  if (running) {
    actions.push({
      label: "Stop agent",
      run: () => attempt(async () => toast((await post(`/api/items/${number}/stop`)).message)),
    });
  }
  if (stage === "qa") {
    actions.push({
      label: "Approve",
      kind: "primary",
      run: () => attempt(async () => putItem(await post(`/api/items/${number}/approve`))),
    });
    actions.push({
      label: "Reject…",
      run: async () => {
        const reason = await ask(`What must #${number}'s coder fix?`, { confirm: "Reject" });
        if (reason) {
          await attempt(async () => putItem(await post(`/api/items/${number}/reject`, { reason })));
        }
      },
    });
  }
  if (stage === "archived" && settings.unblockable.includes(item.stage.reason)) {
    actions.push({
      label: "Unblock",
      kind: "primary",
      run: () => attempt(async () => putItem(await post(`/api/items/${number}/unblock`))),
    });
  }
  for (const target of settings.moves[stage] ?? []) {
    actions.push({ label: moveLabel(stage, target), run: () => moveItem(item, target) });
  }
  return actions;
}

let openMenu = null;

function closeMenu(refocus) {
  if (!openMenu) return;
  const { menu, button } = openMenu;
  openMenu = null;
  menu.remove();
  button.setAttribute("aria-expanded", "false");
  if (refocus) button.focus();
}

document.addEventListener("pointerdown", (event) => {
  if (openMenu && !openMenu.menu.contains(event.target) && event.target !== openMenu.button) {
    closeMenu(false);
  }
});

// A menu of the item's actions beside `button`, driven by the keyboard as well as the mouse.
export function openActionMenu(button, item) {
  const wasOpenHere = openMenu?.button === button;
  closeMenu(false);
  if (wasOpenHere) return;
  const actions = actionsFor(item);
  const entries = actions.map((action) =>
    h("button", {
      type: "button",
      role: "menuitem",
      tabindex: "-1",
      class: action.kind === "primary" ? "strong" : "",
      text: action.label,
      onclick: () => {
        closeMenu(true);
        action.run();
      },
    }),
  );
  if (!entries.length) entries.push(h("p.muted", { text: "No moves from here by hand" }));
  const menu = h(
    "div.menu",
    { role: "menu", "aria-label": `Actions for #${item.number}` },
    entries,
  );
  menu.addEventListener("keydown", (event) => {
    const items = [...menu.querySelectorAll("[role=menuitem]")];
    const index = items.indexOf(document.activeElement);
    if (event.key === "Escape") closeMenu(true);
    else if (event.key === "ArrowDown") items[(index + 1) % items.length]?.focus();
    else if (event.key === "ArrowUp") items[(index - 1 + items.length) % items.length]?.focus();
    else if (event.key === "Home") items[0]?.focus();
    else if (event.key === "End") items.at(-1)?.focus();
    else if (event.key === "Tab") closeMenu(true);
    else return;
    event.preventDefault();
  });
  document.body.append(menu);
  const box = button.getBoundingClientRect();
  const left = Math.min(box.left + scrollX, scrollX + innerWidth - menu.offsetWidth - 8);
  menu.style.left = `${Math.max(8, left)}px`;
  menu.style.top = `${box.bottom + scrollY + 4}px`;
  button.setAttribute("aria-expanded", "true");
  openMenu = { menu, button };
  menu.querySelector("[role=menuitem]")?.focus();
}
