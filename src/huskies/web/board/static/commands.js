// The command box: the commands the CLI and chat offer (status, start N, help, …), sent to
// POST /api/commands, with the same output.

import { post } from "./api.js";
import { h } from "./dom.js";

const panel = document.getElementById("console");
const toggle = document.getElementById("console-toggle");
const output = document.getElementById("console-output");
const form = document.getElementById("console-form");
const input = document.getElementById("console-input");
const history = [];
let recalled = 0;

function openConsole() {
  panel.hidden = false;
  toggle.setAttribute("aria-expanded", "true");
  document.body.classList.add("console-open");
  input.focus();
}

function closeConsole() {
  panel.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  document.body.classList.remove("console-open");
  toggle.focus();
}

async function run(command) {
  const entry = h("div.console-entry", {}, h("div.console-command", { text: `› ${command}` }));
  const answer = h("pre.console-answer.pending", { text: "…" });
  entry.append(answer);
  output.append(entry);
  output.scrollTop = output.scrollHeight;
  try {
    const result = await post("/api/commands", { command });
    answer.textContent = result.output;
    answer.classList.toggle("error", !result.ok);
  } catch (error) {
    answer.textContent = error.message;
    answer.classList.add("error");
  }
  answer.classList.remove("pending");
  output.scrollTop = output.scrollHeight;
}

export function startConsole() {
  toggle.addEventListener("click", () => (panel.hidden ? openConsole() : closeConsole()));
  panel.querySelector("[data-close]").addEventListener("click", closeConsole);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const command = input.value.trim();
    if (!command) return;
    history.push(command);
    recalled = history.length;
    input.value = "";
    run(command);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeConsole();
    else if (event.key === "ArrowUp" && recalled > 0) input.value = history[--recalled];
    else if (event.key === "ArrowDown" && recalled < history.length)
      input.value = history[++recalled] ?? "";
    else return;
    event.preventDefault();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === ":" && !event.target.closest("input, textarea, select, [contenteditable]")) {
      event.preventDefault();
      openConsole();
    }
  });
}
