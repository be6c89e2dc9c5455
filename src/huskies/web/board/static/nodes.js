// This node, its peers (lag, pending changes) and the keys it trusts.

import { api } from "./api.js";
import { ago, field, fromTemplate, h, replaceChildren } from "./dom.js";
import { subscribe } from "./store.js";

// Presence is not on the event stream, so the view reads it again while it is shown.
const REFRESH_MS = 5000;

function nodeId(id) {
  return id
    ? h("code", { title: id, text: `${id.slice(0, 16)}…` })
    : h("span.muted", { text: "unknown" });
}

function selfDetails(self) {
  const rows = [
    ["Node id", h("code.wrap", { text: self.id })],
    ["Role", self.role],
    ["Sync address", h("code.wrap", { text: self.url })],
    ["Changes", self.change_count.toLocaleString()],
    [
      "Pending changes",
      `${self.pending}${self.pending ? " (waiting for a change they depend on)" : ""}`,
    ],
    ["Frames queued", String(self.lag.queued)],
    ["Peers catching up", String(self.lag.catching_up)],
    ["Clock digest", h("code", { title: self.clock, text: `${self.clock.slice(0, 16)}…` })],
  ];
  return rows.map(([name, value]) => [h("dt", { text: name }), h("dd", {}, value)]);
}

function connection(peer) {
  if (!peer.connected) return "not connected";
  return peer.direction === "out" ? "connected (we dial it)" : "connected (it dialled us)";
}

function peerTable(peers) {
  if (!peers.length) return h("p.muted", { text: "No peers: this node works alone." });
  const columns = [
    "Node",
    "Role",
    "Connection",
    "Caught up",
    "Lag (frames)",
    "Connected",
    "Last seen",
  ];
  return h(
    "table",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map((name) => h("th", { scope: "col", text: name })),
      ),
    ),
    h(
      "tbody",
      {},
      peers.map((peer) =>
        h(
          "tr",
          {},
          h("td", {}, nodeId(peer.id), peer.url ? h("div.muted.small", { text: peer.url }) : null),
          h("td", { text: peer.role ?? "–" }),
          h(
            "td",
            {},
            h(`span.dot.${peer.connected ? "dot-running" : "dot-idle"}`, { "aria-hidden": "true" }),
            ` ${connection(peer)}`,
          ),
          h("td", { text: peer.connected ? (peer.caught_up ? "yes" : "catching up") : "–" }),
          h("td.number", { text: String(peer.lag) }),
          h("td", { text: peer.connected_at ? ago(peer.connected_at) : "–" }),
          h("td", { text: peer.last_seen ? ago(peer.last_seen) : "–" }),
        ),
      ),
    ),
  );
}

export function nodesView(root) {
  root.append(fromTemplate("view-nodes"));
  async function load() {
    let nodes;
    try {
      nodes = await api("/api/nodes");
    } catch (error) {
      replaceChildren(field(root, "self"), h("p.error", { text: error.message }));
      return;
    }
    replaceChildren(field(root, "self"), selfDetails(nodes.self));
    replaceChildren(field(root, "peers"), peerTable(nodes.peers));
    replaceChildren(
      field(root, "keys"),
      nodes.trusted_keys.length
        ? nodes.trusted_keys.map((key) => h("li", {}, h("code.wrap", { text: key })))
        : h("li.muted", {
            text: "None: no peer may sync with this node except with a join token.",
          }),
    );
  }
  const timer = setInterval(load, REFRESH_MS);
  const unsubscribe = subscribe((change) => change.type === "reset" && load());
  load();
  return {
    title: "Nodes",
    unmount() {
      clearInterval(timer);
      unsubscribe();
    },
  };
}
