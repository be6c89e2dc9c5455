// An item's agent: its live output as it happens, start / stop / assign, and its past runs.

import { api, post } from "./api.js";
import { ago, duration, field, h, label, replaceChildren, tokens, usd, when } from "./dom.js";
import { attempt, toast } from "./notify.js";
import { outputLine } from "./output.js";
import { AGENT_STAGE } from "./settings.js";
import { agentStatus, putItem, store } from "./store.js";

const STICK_PX = 40;

export class AgentPanel {
  constructor(root, number) {
    this.number = number;
    this.item = null;
    this.log = field(root, "output");
    this.controls = field(root, "agent-controls");
    this.status = field(root, "run-status");
    this.runsTable = field(root, "runs");
    this.run = null; // the run whose output is shown
    this.shown = new Set(); // the seqs of its events on the page
    this.lastSeq = 0;
  }

  // A fresh log for another run, with `note` until its first output.
  clear(note) {
    replaceChildren(this.log, note ? h("li.out.meta.empty", { text: note }) : null);
    this.shown.clear();
    this.lastSeq = 0;
  }

  // The item changed (or was first read): the controls follow its stage and agent.
  show(item) {
    this.item = item;
    this.renderStatus();
    this.renderControls();
  }

  async reload() {
    await Promise.all([this.loadOutput(), this.loadRuns()]);
  }

  async loadOutput() {
    let output;
    try {
      output = await api(`/api/items/${this.number}/output?after=${this.sameRunSeq()}`);
    } catch (error) {
      if (error.status !== 404) throw error;
      this.clear("No agent has run on this item on this node yet.");
      return;
    }
    if (output.run.run !== this.run?.run) this.clear("Waiting for the agent's first output…");
    this.run = output.run;
    this.append(output.events);
    this.renderStatus();
  }

  sameRunSeq() {
    const latest = store.runs.get(this.item?.id);
    return this.run && latest?.run === this.run.run ? this.lastSeq : 0;
  }

  // Output events of this item's runs, live.
  onOutput(output) {
    if (output.number !== this.number) return;
    if (output.run !== this.run?.run) {
      this.clear();
      this.run = store.runs.get(this.item?.id) ?? { run: output.run, agent: output.agent };
    }
    this.append([output]);
  }

  // Lines in the order of their seq, each once: the events read from the API and those that
  // arrived live meanwhile overlap, and either may come first.
  append(events) {
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < STICK_PX;
    for (const event of events) {
      if (this.shown.has(event.seq)) continue;
      this.shown.add(event.seq);
      if (this.log.firstElementChild?.classList.contains("empty")) this.log.replaceChildren();
      const later = event.seq < this.lastSeq && this.laterLine(event.seq);
      this.log.insertBefore(outputLine(event), later || null);
      this.lastSeq = Math.max(this.lastSeq, event.seq);
    }
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
  }

  laterLine(seq) {
    return [...this.log.children].find((line) => Number(line.dataset.seq) > seq);
  }

  onRun(run) {
    if (run.item_id !== this.item?.id) return;
    if (run.run !== this.run?.run && !run.ended_at) this.clear(`${run.agent} is starting…`);
    this.run = run;
    this.renderStatus();
    this.renderControls();
    if (run.ended_at) this.loadRuns().catch(() => {});
  }

  renderStatus() {
    const run = this.run;
    if (!run) {
      replaceChildren(this.status);
      return;
    }
    const status = this.item ? agentStatus(this.item) : "idle";
    const words = run.ended_at
      ? `${run.agent}: ${label(run.outcome ?? run.state)} ${ago(run.ended_at)}`
      : `${run.agent}: ${label(run.state)} since ${when(run.started_at)}`;
    replaceChildren(
      this.status,
      h(`span.dot.dot-${status}`, { "aria-hidden": "true" }),
      " ",
      words,
    );
  }

  renderControls() {
    const item = this.item;
    const stage = AGENT_STAGE[item.stage.name];
    const running = store.runs.get(item.id);
    const active = running && !running.ended_at;
    const choices = store.agents.filter((agent) => agent.stage === (stage ?? "coder"));
    const select = h(
      "select",
      { "aria-label": "Agent" },
      h("option", { value: "", text: "any free agent" }),
      choices.map((agent) =>
        h("option", {
          value: agent.name,
          selected: agent.name === item.agent,
          text: `${agent.name} (${agent.runtime}${agent.model ? `, ${agent.model}` : ""})`,
        }),
      ),
    );
    const chosen = () => select.value || null;
    const start = h("button.primary", {
      type: "button",
      text: "Start",
      disabled: !stage || active || !choices.length,
      onclick: () =>
        attempt(async () => {
          toast((await post(`/api/items/${this.number}/start`, { agent: chosen() })).message);
        }),
    });
    const stop = h("button", {
      type: "button",
      text: "Stop",
      disabled: !active,
      onclick: () =>
        attempt(async () => toast((await post(`/api/items/${this.number}/stop`)).message)),
    });
    const assign = h("button", {
      type: "button",
      text: "Assign",
      title: "Make this agent the item's preferred agent, from its next run",
      onclick: () =>
        attempt(async () => {
          if (!chosen()) throw new Error("Choose an agent to assign");
          putItem(await post(`/api/items/${this.number}/assign`, { agent: chosen() }));
          toast(`#${this.number} will be worked on by ${chosen()}`);
        }),
    });
    const note = !choices.length
      ? `No ${stage ?? "coder"} agent in agents.toml`
      : item.agent
        ? `Preferred: ${item.agent}`
        : "No preferred agent";
    replaceChildren(this.controls, select, start, stop, assign, h("span.muted", { text: note }));
  }

  async loadRuns() {
    let runs;
    try {
      runs = (await api(`/api/items/${this.number}/runs`)).runs;
    } catch (error) {
      replaceChildren(this.runsTable, h("caption.muted", { text: error.message }));
      return;
    }
    if (!runs.length) {
      replaceChildren(this.runsTable, h("caption.muted", { text: "No runs yet." }));
      return;
    }
    const head = h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Started", "Agent", "Outcome", "Cost", "Tokens in / out", "Turns", "Took"].map((name) =>
          h("th", { scope: "col", text: name }),
        ),
      ),
    );
    const rows = runs.map((run) =>
      h(
        "tr",
        {},
        h("td", { text: when(run.started_at) }),
        h("td", { text: run.agent }),
        h(
          "td",
          {},
          h(`span.outcome.outcome-${run.outcome ?? "running"}`, {
            text: label(run.outcome ?? "running"),
          }),
        ),
        h("td.number", { text: usd(run.cost_usd) }),
        h("td.number", { text: `${tokens(run.input_tokens)} / ${tokens(run.output_tokens)}` }),
        h("td.number", { text: run.turns ?? "–" }),
        h("td.number", { text: run.ended_at ? duration(run.ended_at - run.started_at) : "–" }),
      ),
    );
    replaceChildren(this.runsTable, head, h("tbody", {}, rows));
  }
}
