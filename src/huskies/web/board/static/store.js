// What the board knows: items, each item's latest agent run, costs, pending permission
// requests. Filled from the API, kept current by events; views subscribe to its changes.

import { api } from "./api.js";

export const store = {
  items: new Map(), // item id → item
  runs: new Map(), // item id → its latest run on this node
  costs: new Map(), // item number → dollars spent so far
  agents: [], // the configured agents
  permissions: new Map(), // request id → request
  includeArchived: false,
  loaded: false,
};

const listeners = new Set();

// `listener(change)` for every change; change.type is one of reset, item, item_removed, run,
// output, costs, permissions. Returns the unsubscribe function.
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(change) {
  for (const listener of listeners) listener(change);
}

export function itemByNumber(number) {
  for (const item of store.items.values()) if (item.number === number) return item;
  return null;
}

// How an item's status is said, beside its dot.
export const STATUS_TEXT = {
  idle: "agent idle",
  running: "agent running",
  rate_limited: "agent rate limited",
  blocked: "blocked",
};

// The status dot of an item: blocked, running, rate_limited or idle.
export function agentStatus(item) {
  if (item.blocked_reason || (item.stage.name === "archived" && item.stage.reason === "blocked")) {
    return "blocked";
  }
  const state = store.runs.get(item.id)?.state;
  if (state === "running" || state === "pending") return "running";
  if (state === "rate_limited") return "rate_limited";
  return "idle";
}

// An item as an event or a response carries it. Only a version at least as new as the one
// held replaces it, so an event that was queued behind a reload cannot undo what it read.
export function putItem(item) {
  const previous = store.items.get(item.id);
  if (previous && previous.updated_at > item.updated_at) return;
  store.items.set(item.id, item);
  emit({ type: "item", item, previous });
}

function removeItem({ id, number }) {
  if (store.items.delete(id)) emit({ type: "item_removed", id, number });
}

function putRun(run) {
  const held = store.runs.get(run.item_id);
  if (held && held.run !== run.run && held.started_at > run.started_at) return;
  store.runs.set(run.item_id, run);
  emit({ type: "run", run });
  if (run.ended_at !== null) refreshCostsSoon();
}

let costTimer = null;
function refreshCostsSoon() {
  clearTimeout(costTimer);
  costTimer = setTimeout(() => loadCosts().catch(() => {}), 300);
}

async function loadCosts() {
  const costs = await api("/api/costs");
  store.costs = new Map(costs.by_item.map((entry) => [entry.number, entry.usd]));
  emit({ type: "costs", costs });
}

// Events that arrive while a reload is under way wait for it, then apply in order.
let reloading = null;
let reloadAgain = false;
let queued = [];

export function applyEvent(frame) {
  if (reloading) {
    queued.push(frame);
    return;
  }
  const { kind, data } = frame;
  switch (kind) {
    case "item":
      putItem(data.item);
      break;
    case "item_removed":
      removeItem(data);
      break;
    case "agent_state":
      putRun(data);
      break;
    case "agent_output":
      emit({ type: "output", output: data });
      break;
    case "permission_request":
      store.permissions.set(data.id, data);
      emit({ type: "permissions" });
      break;
    case "permission_answered":
      if (store.permissions.delete(data.id)) emit({ type: "permissions", answered: data });
      break;
    case "notification":
      emit({ type: "notification", messages: data.messages });
      break;
    case "lagged":
      // A reload that fails means the server went away: the reconnection reloads anyway.
      reload().catch(() => {});
      break;
  }
}

// Everything again from the API: at start, after a reconnection, after `lagged`.
export function reload() {
  if (reloading) reloadAgain = true;
  else reloading = loadAll().finally(afterReload);
  return reloading;
}

async function loadAll() {
  const [items, agents, permissions] = await Promise.all([
    api(store.includeArchived ? "/api/items?all=true" : "/api/items"),
    api("/api/agents"),
    api("/api/permissions").catch(() => ({ requests: [] })),
  ]);
  store.items = new Map(items.items.map((item) => [item.id, item]));
  store.agents = agents.agents;
  store.runs = new Map();
  // Newest first: the first run seen for an item is its latest.
  for (const run of agents.runs) if (!store.runs.has(run.item_id)) store.runs.set(run.item_id, run);
  store.permissions = new Map(permissions.requests.map((request) => [request.id, request]));
  store.loaded = true;
  emit({ type: "reset" });
  emit({ type: "permissions" });
  loadCosts().catch(() => {});
}

function afterReload() {
  reloading = null;
  const pending = queued;
  queued = [];
  for (const frame of pending) applyEvent(frame);
  if (reloadAgain) {
    reloadAgain = false;
    reload().catch(() => {});
  }
}
