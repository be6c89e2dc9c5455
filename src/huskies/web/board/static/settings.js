// What the page was rendered with: stages, kinds, QA modes, the moves a person may make from
// each stage (the pipeline's own rule) and the archive reasons `unblock` undoes.
export const settings = JSON.parse(document.getElementById("board-settings").textContent);

// The agent stage that works on items in a pipeline stage (a backlog item starts with a coder).
export const AGENT_STAGE = { backlog: "coder", coding: "coder", qa: "qa", merge: "mergemaster" };
