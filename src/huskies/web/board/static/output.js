// One line of an agent's live output per event: text, tool calls and their results, the
// run's result, rate limits, errors.

import { clock, duration, h, tokens, usd } from "./dom.js";

const LONG_OUTPUT_LINES = 12;

// The argument people most want to see of a tool call (the command, the file), else its JSON.
function toolSummary(input) {
  for (const key of ["command", "file_path", "path", "pattern", "url", "query", "description"]) {
    if (typeof input?.[key] === "string") return input[key];
  }
  const text = JSON.stringify(input ?? {});
  return text === "{}" ? "" : text;
}

function collapsible(text, summary) {
  if (text.split("\n").length <= LONG_OUTPUT_LINES && text.length < 1200) {
    return h("pre", { text });
  }
  return h("details", {}, h("summary", { text: summary }), h("pre", { text }));
}

function body(event) {
  switch (event.type) {
    case "text":
      return ["text", h("div.text", { text: event.text })];
    case "tool_use":
      return [
        "tool",
        h(
          "div",
          {},
          h("span.tool-name", { text: event.name }),
          " ",
          h("code", { text: toolSummary(event.input) }),
        ),
      ];
    case "tool_result": {
      const lines = event.output.split("\n").length;
      return [
        event.is_error ? "tool-result error" : "tool-result",
        collapsible(event.output || "(no output)", `${lines} lines of output`),
      ];
    }
    case "result": {
      const usage = event.usage ?? {};
      const parts = [
        event.is_error ? "Finished with an error" : "Finished",
        usd(event.cost_usd),
        `${tokens(usage.input_tokens)} in / ${tokens(usage.output_tokens)} out`,
      ];
      if (event.turns !== null && event.turns !== undefined) parts.push(`${event.turns} turns`);
      if (event.duration_ms) parts.push(duration(event.duration_ms));
      return [
        event.is_error ? "result error" : "result",
        h(
          "div",
          {},
          h("strong", { text: parts.join(" · ") }),
          event.text ? h("div.text", { text: event.text }) : null,
        ),
      ];
    }
    case "rate_limit": {
      const resets = event.resets_at ? ` (resets at ${clock(event.resets_at)})` : "";
      return ["warn", h("div", { text: `Rate limited: ${event.message}${resets}` })];
    }
    case "error":
      return ["error", h("div", { text: event.message })];
    case "session_started":
      return ["meta", h("div", { text: `Session started · ${event.model || "model unknown"}` })];
    default:
      return ["meta", h("div", { text: JSON.stringify(event) })];
  }
}

// `output` is one agent_output event's data, or one event of GET /api/items/{n}/output.
export function outputLine(output) {
  const [kind, content] = body(output.event);
  return h(
    "li",
    { class: `out ${kind}`, "data-seq": output.seq },
    h("time", { datetime: new Date(output.at).toISOString(), text: clock(output.at) }),
    content,
  );
}
