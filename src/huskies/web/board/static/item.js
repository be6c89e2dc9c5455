// An item's page: title, description with a markdown preview, its acceptance-criteria
// checklist, details, dependencies, merge status, history, gate output and its agent.

import { actionsFor } from "./actions.js";
import { AgentPanel } from "./agent_panel.js";
import { api, post } from "./api.js";
import { ago, field, fromTemplate, h, label, replaceChildren, usd, when } from "./dom.js";
import { gateReports, mergeStatus } from "./gates.js";
import { attempt } from "./notify.js";
import { STATUS_TEXT, agentStatus, itemByNumber, putItem, store, subscribe } from "./store.js";

// A markdown task-list line: "- [ ] text" or "* [x] text".
const TASK = /^(\s*[-*+]\s+\[)([ xX])(\]\s+)(.*)$/;
const MIN_BODY_ROWS = 6;
const MAX_BODY_ROWS = 28;
function criteria(body) {
  return body
    .split("\n")
    .map((line, index) => ({ match: TASK.exec(line), index }))
    .filter(({ match }) => match)
    .map(({ match, index }) => ({ index, done: match[2] !== " ", text: match[4] }));
}

function toggled(body, lineIndex) {
  const lines = body.split("\n");
  lines[lineIndex] = lines[lineIndex].replace(
    TASK,
    (_, open, mark, close, text) => `${open}${mark === " " ? "x" : " "}${close}${text}`,
  );
  return lines.join("\n");
}

function debounce(action, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(action, ms);
  };
}

function shortId(text) {
  return /^[0-9a-f]{24,}$/i.test(text) ? `${text.slice(0, 12)}…` : text;
}

export function itemView(root, number) {
  root.append(fromTemplate("view-item"));
  const part = (name) => field(root, name);
  const bodyInput = root.querySelector("#body-input");
  const preview = root.querySelector("#body-preview");
  const saveBody = root.querySelector("[data-action=save-body]");
  const revertBody = root.querySelector("[data-action=revert-body]");
  const titleForm = root.querySelector(".title-form");
  const agentPanel = new AgentPanel(root, number);
  let item = null;
  let savedBody = "";

  function dirty() {
    return bodyInput.value !== savedBody;
  }

  function renderHead() {
    part("number").textContent = `#${item.number}`;
    const kind = part("kind");
    kind.className = `kind kind-${item.kind}`;
    kind.textContent = item.kind;
    part("title").textContent = item.title;
    document.title = `#${item.number} ${item.title} · huskies`;
    const stage = part("stage");
    stage.className = `stage-pill stage-${item.stage.name}`;
    stage.textContent =
      item.stage.name === "archived" ? `archived: ${label(item.stage.reason)}` : item.stage.name;
    const status = agentStatus(item);
    replaceChildren(
      part("status"),
      h(`span.dot.dot-${status}`, { "aria-hidden": "true" }),
      ` ${STATUS_TEXT[status]}`,
    );
    part("updated").textContent = `updated ${ago(item.updated_at)}`;
    replaceChildren(
      part("actions"),
      actionsFor(item).map((action) =>
        h(`button${action.kind === "primary" ? ".primary" : ""}`, {
          type: "button",
          text: action.label,
          onclick: action.run,
        }),
      ),
    );
  }

  function renderBody() {
    if (dirty() && document.activeElement === bodyInput) {
      part("body-state").textContent = "Changed elsewhere meanwhile; saving keeps your text.";
      savedBody = item.body;
      return;
    }
    savedBody = item.body;
    bodyInput.value = item.body;
    bodyChanged();
  }

  function bodyChanged() {
    const lines = bodyInput.value.split("\n").length + 1;
    bodyInput.rows = Math.min(Math.max(lines, MIN_BODY_ROWS), MAX_BODY_ROWS);
    const isDirty = dirty();
    saveBody.disabled = !isDirty;
    revertBody.disabled = !isDirty;
    part("body-state").textContent = isDirty ? "Unsaved changes" : "";
    renderCriteria();
    if (!preview.hidden) refreshPreview();
  }

  function renderCriteria() {
    const list = criteria(bodyInput.value);
    const done = list.filter((entry) => entry.done).length;
    part("criteria-progress").textContent = list.length ? `${done} of ${list.length} done` : "";
    if (!list.length) {
      replaceChildren(
        part("criteria"),
        h("li.muted", {
          text: "No checklist yet: lines like “- [ ] it does X” in the description make one.",
        }),
      );
      return;
    }
    replaceChildren(
      part("criteria"),
      list.map((entry) => {
        const id = `criterion-${entry.index}`;
        return h(
          "li",
          {},
          h("input", {
            type: "checkbox",
            id,
            checked: entry.done,
            onchange: () => toggleCriterion(entry.index),
          }),
          h("label", { for: id, text: entry.text }),
        );
      }),
    );
  }

  // Ticking a criterion saves at once, unless the description has unsaved edits: then it is
  // one more edit, saved with them.
  async function toggleCriterion(lineIndex) {
    const wasDirty = dirty();
    bodyInput.value = toggled(bodyInput.value, lineIndex);
    if (wasDirty) bodyChanged();
    else await save();
  }

  async function save() {
    const body = bodyInput.value;
    await attempt(async () => {
      const edited = await api(`/api/items/${number}`, { method: "PATCH", body: { body } });
      savedBody = body;
      putItem(edited.item);
      bodyChanged();
      part("body-state").textContent = "Saved";
    });
  }

  const refreshPreview = debounce(async () => {
    try {
      const { html } = await post("/api/markdown", { text: bodyInput.value });
      preview.innerHTML = html; // the server renders with raw HTML disabled
    } catch (error) {
      replaceChildren(preview, h("p.error", { text: error.message }));
    }
  }, 150);

  function renderDetails() {
    const run = store.runs.get(item.id);
    const rows = [
      [
        "Stage",
        item.stage.name === "archived" ? `archived (${label(item.stage.reason)})` : item.stage.name,
      ],
      ["Kind", item.kind],
      ["Preferred agent", item.agent ?? "any"],
      ["Last run", run ? `${run.agent}, ${label(run.outcome ?? run.state)}` : "none on this node"],
      ["QA", item.qa ?? "project default"],
      ["Failed attempts", String(item.retries)],
      ["Cost so far", usd(store.costs.get(item.number) ?? 0)],
      ["Created", when(item.created_at)],
      ["Updated", when(item.updated_at)],
    ];
    if (item.claim)
      rows.push([
        "Worked on by",
        `node ${shortId(item.claim.node)} until ${when(item.claim.expires_at)}`,
      ]);
    if (item.blocked_reason) rows.push(["Blocked", item.blocked_reason]);
    replaceChildren(
      part("details"),
      rows.map(([name, value]) => [h("dt", { text: name }), h("dd", { text: value })]),
    );
  }

  async function renderDeps() {
    const list = part("deps");
    if (!item.depends_on.length) {
      replaceChildren(list, h("li.muted", { text: "Nothing: it can start any time." }));
      return;
    }
    const entries = await Promise.all(
      item.depends_on.map(async (dependency) => {
        const known =
          itemByNumber(dependency) ?? (await api(`/api/items/${dependency}`).catch(() => null));
        if (!known)
          return h(
            "li",
            {},
            h("span.num", { text: `#${dependency}` }),
            " ",
            h("span.muted", { text: "not on the board" }),
          );
        const finished = ["done", "archived"].includes(known.stage.name);
        return h(
          "li",
          {},
          h(`span.dep-state.${finished ? "finished" : "waiting"}`, {
            text: finished ? "✓" : "…",
            "aria-label": finished ? "finished" : "waiting",
          }),
          h("a", { href: `/board/items/${dependency}`, text: `#${dependency} ${known.title}` }),
          h(`span.stage-pill.small.stage-${known.stage.name}`, { text: known.stage.name }),
        );
      }),
    );
    replaceChildren(list, entries);
  }

  let reports = [];
  function renderMerge() {
    replaceChildren(part("merge"), mergeStatus(item, reports));
  }

  async function loadGates() {
    try {
      reports = (await api(`/api/items/${number}/gates`)).reports;
    } catch (error) {
      replaceChildren(part("gates"), h("p.error", { text: error.message }));
      return;
    }
    renderMerge();
    replaceChildren(part("gates"), gateReports(reports));
  }

  async function loadHistory() {
    let history;
    try {
      history = await api(`/api/items/${number}/history`);
    } catch (error) {
      replaceChildren(part("history"), h("li.error", { text: error.message }));
      return;
    }
    const changes = [...history.changes].reverse();
    replaceChildren(
      part("history"),
      changes.length
        ? changes.map((change) =>
            h(
              "li",
              {},
              h("div.history-summary", { text: change.summary }),
              h(
                "div.muted.small",
                {},
                h("time", {
                  datetime: new Date(change.at).toISOString(),
                  title: when(change.at),
                  text: ago(change.at),
                }),
                ` · ${shortId(change.author)}`,
              ),
            ),
          )
        : h("li.muted", { text: "No changes recorded." }),
    );
  }

  const refreshHistory = debounce(() => loadHistory(), 250);
  const refreshGates = debounce(() => loadGates(), 250);

  function show(next) {
    const stageChanged = item && item.stage.name !== next.stage.name;
    item = next;
    renderHead();
    if (next.body !== savedBody) renderBody();
    renderDetails();
    renderDeps();
    renderMerge();
    agentPanel.show(item);
    if (stageChanged) refreshGates();
  }

  async function load() {
    let fetched;
    try {
      fetched = await api(`/api/items/${number}`);
    } catch (error) {
      replaceChildren(
        root,
        h(
          "div.panel.empty-page",
          {},
          h("h1", { text: `#${number}` }),
          h("p", { text: error.message }),
          h("a", { href: "/", text: "← Back to the board" }),
        ),
      );
      return;
    }
    putItem(fetched);
    show(store.items.get(fetched.id) ?? fetched);
    await Promise.all([loadGates(), loadHistory(), agentPanel.reload()]);
  }

  // Description: write / preview tabs, save and revert.
  const tabs = [root.querySelector("#tab-write"), root.querySelector("#tab-preview")];
  function selectTab(tab) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      root.querySelector(`#${other.getAttribute("aria-controls")}`).hidden = !selected;
    }
    if (tab === tabs[1]) refreshPreview();
  }
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = tabs[(tabs.indexOf(tab) + 1) % tabs.length];
      selectTab(next);
      next.focus();
    });
  }
  bodyInput.addEventListener("input", bodyChanged);
  bodyInput.addEventListener("keydown", (event) => {
    if (event.key === "s" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (dirty()) save();
    }
  });
  saveBody.addEventListener("click", save);
  revertBody.addEventListener("click", () => {
    bodyInput.value = savedBody;
    bodyChanged();
  });

  // Renaming.
  const titleInput = root.querySelector("#title-input");
  root.querySelector("[data-action=edit-title]").addEventListener("click", () => {
    titleInput.value = item.title;
    titleForm.hidden = false;
    titleInput.focus();
  });
  root.querySelector("[data-action=cancel-title]").addEventListener("click", () => {
    titleForm.hidden = true;
  });
  titleForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    await attempt(async () => {
      const edited = await api(`/api/items/${number}`, {
        method: "PATCH",
        body: { title: titleInput.value.trim() },
      });
      putItem(edited.item);
      titleForm.hidden = true;
    });
  });

  const unsubscribe = subscribe((change) => {
    switch (change.type) {
      case "reset":
        load();
        break;
      case "item":
        if (change.item.number === number || change.item.id === item?.id) {
          show(change.item);
          refreshHistory();
        }
        break;
      case "run":
        if (change.run.item_id === item?.id) {
          renderHead();
          renderDetails();
          agentPanel.onRun(change.run);
        }
        break;
      case "output":
        agentPanel.onOutput(change.output);
        break;
      case "costs":
        if (item) renderDetails();
        break;
    }
  });
  if (store.loaded) load();
  return { title: `#${number}`, unmount: unsubscribe };
}
