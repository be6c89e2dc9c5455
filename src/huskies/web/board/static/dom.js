// Building DOM without a framework, and the formats every view shares.

// h("a.card-title", {href: "/x", onclick: f}, "text", child, [more]) → an element.
// Props named on* are listeners; `text` sets textContent; other props are attributes
// (true → present, false/null/undefined → absent).
export function h(spec, props, ...children) {
  const [tag, ...classes] = spec.split(".");
  const element = document.createElement(tag || "div");
  if (classes.length) element.className = classes.join(" ");
  for (const [name, value] of Object.entries(props || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else if (name === "class") element.className = `${element.className} ${value}`.trim();
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function replaceChildren(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

// The element of a view marked data-field="name".
export function field(root, name) {
  return root.querySelector(`[data-field="${name}"]`);
}

export function fromTemplate(id) {
  return document.getElementById(id).content.cloneNode(true);
}

export function usd(amount) {
  if (amount === null || amount === undefined) return "–";
  if (amount > 0 && amount < 0.01) return "<$0.01";
  return `$${amount.toFixed(2)}`;
}

export function tokens(count) {
  if (count === null || count === undefined) return "–";
  if (count >= 1e6) return `${(count / 1e6).toFixed(1)}M`;
  if (count >= 1e4) return `${Math.round(count / 1e3)}k`;
  return count.toLocaleString();
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const shortTime = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

// A moment as people read it: the time alone if it is today, else the date too.
export function when(ms) {
  if (!ms) return "–";
  const date = new Date(ms);
  return date.toDateString() === new Date().toDateString()
    ? shortTime.format(date)
    : dateTime.format(date);
}

export function clock(ms) {
  return timeOnly.format(new Date(ms));
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["day", 86400000],
  ["hour", 3600000],
  ["minute", 60000],
  ["second", 1000],
];

// "3 minutes ago", "in 2 hours": in the largest unit that fits.
export function ago(ms) {
  const delta = ms - Date.now();
  const [unit, size] = UNITS.find(([, size]) => Math.abs(delta) >= size) ?? UNITS.at(-1);
  return relative.format(Math.round(delta / size), unit);
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${ms} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

// "1 commit", "3 commits".
export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export function label(name) {
  return name.replaceAll("_", " ");
}
