// The board: a column per stage, a card per item, filters, and moves by drag or by menu.

import { moveItem, openActionMenu } from "./actions.js";
import { openNewItem } from "./dialogs.js";
import { fromTemplate, h, label, plural, usd } from "./dom.js";
import { settings } from "./settings.js";
import { STATUS_TEXT, agentStatus, reload, store, subscribe } from "./store.js";

export function boardView(root) {
  root.append(fromTemplate("view-board"));
  const columnsElement = root.querySelector("#columns");
  const search = root.querySelector("#search");
  const kindFilter = root.querySelector("#kind-filter");
  const statusFilter = root.querySelector("#status-filter");
  const showArchived = root.querySelector("#show-archived");
  const total = root.querySelector("#board-total");
  kindFilter.append(...settings.kinds.map((kind) => h("option", { value: kind, text: kind })));
  showArchived.checked = store.includeArchived;
  root.querySelector("#new-item").addEventListener("click", openNewItem);

  const columns = new Map();
  for (const stage of settings.stages) {
    const count = h("span.count", { "aria-label": "items" });
    const list = h("ol.cards", { "aria-labelledby": `column-${stage}` });
    const section = h(
      "section.column",
      { "data-stage": stage },
      h("header", {}, h("h2", { id: `column-${stage}`, text: label(stage) }), count),
      list,
    );
    columns.set(stage, { section, list, count });
    columnsElement.append(section);
  }
  const cards = new Map(); // item id → card

  function matches(item) {
    const text = search.value.trim().toLowerCase();
    if (kindFilter.value && item.kind !== kindFilter.value) return false;
    if (statusFilter.value && agentStatus(item) !== statusFilter.value) return false;
    if (!text) return true;
    const number = text.replace(/^#/, "");
    if (/^\d+$/.test(number)) return String(item.number).startsWith(number);
    return item.title.toLowerCase().includes(text);
  }

  function card(item) {
    const status = agentStatus(item);
    const cost = store.costs.get(item.number);
    const agent = store.runs.get(item.id)?.agent ?? item.agent;
    const element = h(
      "li.card",
      { "data-id": item.id, "data-number": item.number, draggable: "true" },
      h(
        "div.card-top",
        {},
        h("span.num", { text: `#${item.number}` }),
        h(`span.kind.kind-${item.kind}`, { text: item.kind }),
        h("span.spacer"),
        h(`span.dot.dot-${status}`, {
          role: "img",
          "aria-label": STATUS_TEXT[status],
          title: STATUS_TEXT[status],
        }),
      ),
      h("a.card-title", { href: `/board/items/${item.number}`, text: item.title }),
      item.blocked_reason ? h("p.card-note", { text: item.blocked_reason }) : null,
      h(
        "div.card-meta",
        {},
        agent ? h("span.agent", { text: agent }) : null,
        item.retries
          ? h("span.retries", {
              title: plural(item.retries, "failed attempt"),
              text: `↻ ${item.retries}`,
            })
          : null,
        cost ? h("span.cost", { title: "cost so far", text: usd(cost) }) : null,
        item.depends_on.length
          ? h("span.card-deps", {
              title: "depends on",
              text: `after ${item.depends_on.map((n) => `#${n}`).join(", ")}`,
            })
          : null,
        h("span.spacer"),
        h("button.ghost.small.card-menu", {
          type: "button",
          "aria-haspopup": "menu",
          "aria-expanded": "false",
          "aria-label": `Actions for #${item.number}`,
          text: "Move ▾",
        }),
      ),
    );
    element.hidden = !matches(item);
    return element;
  }

  function column(item) {
    return columns.get(item.stage.name);
  }

  // Cards stay in number order within a column.
  function insert(list, element, number) {
    for (const other of list.children) {
      if (Number(other.dataset.number) > number) {
        list.insertBefore(element, other);
        return;
      }
    }
    list.append(element);
  }

  function counts() {
    let shown = 0;
    for (const { list, count, section } of columns.values()) {
      const visible = list.querySelectorAll(".card:not([hidden])").length;
      shown += section.hidden ? 0 : visible;
      const all = list.children.length;
      count.textContent = visible === all ? String(all) : `${visible} / ${all}`;
    }
    total.textContent = `${plural(shown, "item")} shown`;
  }

  function renderAll() {
    const started = performance.now();
    cards.clear();
    const lists = new Map([...columns.keys()].map((stage) => [stage, []]));
    const items = [...store.items.values()].sort((a, b) => a.number - b.number);
    for (const item of items) {
      const element = card(item);
      cards.set(item.id, element);
      lists.get(item.stage.name)?.push(element);
    }
    for (const [stage, { list, section }] of columns) {
      list.replaceChildren(...lists.get(stage));
      section.hidden = stage === "archived" && !store.includeArchived;
    }
    counts();
    // For the browser's performance tools and the benchmark: how long the whole board took.
    performance.measure("board render", { start: started });
  }

  function update(item, flash) {
    const old = cards.get(item.id);
    const element = card(item);
    cards.set(item.id, element);
    if (
      old &&
      old.parentElement === column(item)?.list &&
      old.dataset.number === String(item.number)
    ) {
      old.replaceWith(element);
    } else {
      old?.remove();
      if (column(item)) insert(column(item).list, element, item.number);
    }
    if (flash) element.classList.add("flash");
    if (old?.contains(document.activeElement)) element.querySelector(".card-title").focus();
  }

  function refilter() {
    for (const item of store.items.values()) {
      const element = cards.get(item.id);
      if (element) element.hidden = !matches(item);
    }
    counts();
  }

  for (const input of [search, kindFilter, statusFilter]) input.addEventListener("input", refilter);
  showArchived.addEventListener("change", () => {
    store.includeArchived = showArchived.checked;
    reload().catch(() => {});
  });

  columnsElement.addEventListener("click", (event) => {
    const menuButton = event.target.closest(".card-menu");
    const element = event.target.closest(".card");
    if (!element) return;
    const item = store.items.get(element.dataset.id);
    if (menuButton && item) openActionMenu(menuButton, item);
    else if (!event.target.closest("a, button")) element.querySelector(".card-title").click();
  });

  // Drag a card onto a column: the columns it may go to light up; a drop anywhere else still
  // asks the server, whose refusal says why.
  let dragged = null;
  columnsElement.addEventListener("dragstart", (event) => {
    const element = event.target.closest?.(".card");
    dragged = element && store.items.get(element.dataset.id);
    if (!dragged) return;
    event.dataTransfer.setData("text/plain", `#${dragged.number}`);
    event.dataTransfer.effectAllowed = "move";
    const legal = settings.moves[dragged.stage.name] ?? [];
    for (const [stage, { section }] of columns) {
      section.dataset.drop =
        stage === dragged.stage.name ? "home" : legal.includes(stage) ? "legal" : "illegal";
    }
  });
  columnsElement.addEventListener("dragend", () => {
    dragged = null;
    for (const { section } of columns.values()) {
      delete section.dataset.drop;
      section.classList.remove("over");
    }
  });
  for (const [stage, { section }] of columns) {
    section.addEventListener("dragover", (event) => {
      if (!dragged) return;
      event.preventDefault();
      section.classList.add("over");
    });
    section.addEventListener("dragleave", (event) => {
      if (!section.contains(event.relatedTarget)) section.classList.remove("over");
    });
    section.addEventListener("drop", (event) => {
      event.preventDefault();
      section.classList.remove("over");
      if (dragged && dragged.stage.name !== stage) moveItem(dragged, stage);
    });
  }

  function focusSearch(event) {
    if (event.key === "/" && !event.target.closest("input, textarea, select, [contenteditable]")) {
      event.preventDefault();
      search.focus();
    }
  }
  document.addEventListener("keydown", focusSearch);

  const unsubscribe = subscribe((change) => {
    switch (change.type) {
      case "reset":
        renderAll();
        break;
      case "item":
        update(change.item, true);
        counts();
        break;
      case "item_removed":
        cards.get(change.id)?.remove();
        cards.delete(change.id);
        counts();
        break;
      case "run": {
        const item = store.items.get(change.run.item_id);
        if (item) update(item, false);
        counts(); // the status filter may show or hide it now
        break;
      }
      case "costs":
        for (const item of store.items.values()) {
          if (store.costs.has(item.number)) update(item, false);
        }
        break;
    }
  });
  if (store.loaded) renderAll();
  return {
    title: "Board",
    unmount() {
      unsubscribe();
      document.removeEventListener("keydown", focusSearch);
    },
  };
}
