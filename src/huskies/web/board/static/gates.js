// What the quality gates found on an item, and where it stands with its merge.

import { ago, duration, h, plural, when } from "./dom.js";

function badge(passed, text, small = false) {
  return h(`span.badge.${passed ? "pass" : "fail"}${small ? ".small" : ""}`, { text });
}

function resultBadge(result) {
  const passed = result.exit_code === 0 && !result.timed_out;
  if (result.timed_out) return badge(passed, "timed out", true);
  if (result.exit_code === null) return badge(passed, "did not run", true);
  return badge(passed, `exit ${result.exit_code}`, true);
}

function report(entry, open) {
  const took = duration(entry.ended_at - entry.started_at);
  return h(
    "details.gate-report",
    { open },
    h(
      "summary",
      {},
      badge(entry.passed, entry.passed ? "passed" : "failed"),
      ` in the ${entry.where}, ${when(entry.ended_at)} · ${took}`,
    ),
    entry.results.map((result) =>
      h(
        "div.gate-result",
        {},
        h(
          "div.gate-line",
          {},
          resultBadge(result),
          h("strong", { text: ` ${result.component} · ${result.name} ` }),
          h("code", { text: result.command }),
          h("span.muted", { text: ` ${duration(result.duration_ms)}` }),
        ),
        result.output_tail ? h("pre.gate-output", { text: result.output_tail }) : null,
      ),
    ),
    h("p.muted.small", { text: `Full log: ${entry.log}` }),
  );
}

// The reports of GET /api/items/{n}/gates, newest first and open.
export function gateReports(reports) {
  if (!reports.length) return h("p.muted", { text: "The gates have not run on this item yet." });
  return reports.map((entry, index) => report(entry, index === 0));
}

function mergeWords(item) {
  const stage = item.stage;
  switch (stage.name) {
    case "merge":
      return [
        "Queued to squash-merge ",
        h("code", { text: stage.feature_branch }),
        ` (${plural(stage.commits_ahead, "commit")} ahead of the base branch).`,
      ];
    case "done":
      if (!stage.merge_commit) {
        return [`Done ${when(stage.merged_at)} without a merge (a spike merges nothing).`];
      }
      return [
        `Merged ${when(stage.merged_at)} as `,
        h("code", { text: stage.merge_commit.slice(0, 10) }),
        ".",
      ];
    case "archived":
      if (stage.reason === "merge_failed") {
        return [`The merge failed: ${item.blocked_reason ?? "see the gates"}.`];
      }
      return [stage.previous?.name === "done" ? "Merged, then archived." : "Archived unmerged."];
    default:
      return ["Not queued for a merge yet: it gets there when it passes QA."];
  }
}

// Where the item stands with its merge, and how the gates did on the squashed result.
export function mergeStatus(item, reports) {
  const gates = reports.find((entry) => entry.where === "merge");
  return [
    h("p", {}, mergeWords(item)),
    gates
      ? h(
          "p",
          {},
          badge(gates.passed, gates.passed ? "gates passed" : "gates failed"),
          ` on the squashed result, ${ago(gates.ended_at)}`,
        )
      : null,
  ];
}
