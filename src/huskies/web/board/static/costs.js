// What the agents cost: per day, per item and per agent, as bar charts drawn in SVG.

import { api } from "./api.js";
import { field, fromTemplate, h, plural, replaceChildren, tokens, usd } from "./dom.js";
import { subscribe } from "./store.js";

const SVG = "http://www.w3.org/2000/svg";
const DAY_MS = 86400000;
const MIN_DAYS = 7;
const MAX_DAYS = 30;
const MAX_BAR_PX = 48;
const BARS_SHOWN = 12;

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function titled(element, text) {
  element.append(svg("title", {}, text));
  return element;
}

const dayLabel = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  timeZone: "UTC",
});

// The days to draw, oldest first: from the first day with spend (at least a week back, at
// most a month) to the last, days without spend as zero.
function days(byDay) {
  const spent = new Map(byDay.map((entry) => [entry.day, entry.usd]));
  const last = Date.parse(`${byDay.at(-1).day}T00:00:00Z`);
  const span = Math.round((last - Date.parse(`${byDay[0].day}T00:00:00Z`)) / DAY_MS) + 1;
  const count = Math.min(Math.max(span, MIN_DAYS), MAX_DAYS);
  return Array.from({ length: count }, (_, index) => {
    const day = new Date(last - (count - 1 - index) * DAY_MS).toISOString().slice(0, 10);
    return { day, usd: spent.get(day) ?? 0 };
  });
}

// Vertical bars, one per day, drawn at the width the chart has on the page, so its text
// keeps the page's size.
function dayChart(byDay, width) {
  if (!byDay.length) return h("p.muted", { text: "Nothing spent yet." });
  const shown = days(byDay);
  const height = 200;
  const bottom = 24;
  const top = 18;
  const most = Math.max(...shown.map((entry) => entry.usd), 0.01);
  const slot = width / shown.length;
  const every = Math.ceil(shown.length / Math.max(1, Math.floor(width / 70)));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Spend per day over ${shown.length} days; most in one day ${usd(most)}`,
    class: "bars",
  });
  chart.append(
    svg("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom, class: "axis" }),
  );
  shown.forEach((entry, index) => {
    const barHeight = ((height - bottom - top) * entry.usd) / most;
    const barWidth = Math.min(slot * 0.6, MAX_BAR_PX);
    const x = index * slot + (slot - barWidth) / 2;
    chart.append(
      titled(
        svg("rect", {
          x,
          y: height - bottom - barHeight,
          width: barWidth,
          height: Math.max(barHeight, entry.usd ? 1 : 0),
          rx: 3,
          class: "bar",
        }),
        `${entry.day}: ${usd(entry.usd)}`,
      ),
    );
    if ((shown.length - 1 - index) % every === 0) {
      const label = dayLabel.format(new Date(`${entry.day}T00:00:00Z`));
      chart.append(
        svg(
          "text",
          { x: x + barWidth / 2, y: height - 6, "text-anchor": "middle", class: "tick" },
          label,
        ),
      );
    }
  });
  chart.append(svg("text", { x: 0, y: 12, class: "tick" }, `${usd(most)} most in a day`));
  return chart;
}

// Horizontal bars, largest first, with the label on the left and the amount on the right.
function barList(entries, describe) {
  if (!entries.length) return h("p.muted", { text: "Nothing spent yet." });
  const shown = [...entries].sort((a, b) => b.usd - a.usd).slice(0, BARS_SHOWN);
  const most = Math.max(shown[0].usd, 0.01);
  return h(
    "ol.hbars",
    {},
    shown.map((entry) => {
      const { name, href, detail } = describe(entry);
      return h(
        "li",
        {},
        h(
          "div.hbar-label",
          {},
          href ? h("a", { href, text: name }) : h("span", { text: name }),
          h("span.muted.small", { text: detail }),
        ),
        h(
          "div.hbar-track",
          {},
          h("div.hbar", { style: `width: ${Math.max((100 * entry.usd) / most, 0.5)}%` }),
        ),
        h("span.hbar-value", { text: usd(entry.usd) }),
      );
    }),
  );
}

export function costsView(root) {
  root.append(fromTemplate("view-costs"));
  async function load() {
    let costs;
    try {
      costs = await api("/api/costs");
    } catch (error) {
      replaceChildren(field(root, "by-day"), h("p.error", { text: error.message }));
      return;
    }
    show(costs);
  }
  let latest = null;
  function drawDays() {
    const chart = field(root, "by-day");
    replaceChildren(chart, dayChart(latest.by_day, chart.clientWidth || 720));
  }
  function show(costs) {
    latest = costs;
    field(root, "total").textContent = `${usd(costs.total_usd)} in all`;
    drawDays();
    replaceChildren(
      field(root, "by-item"),
      barList(costs.by_item, (entry) => ({
        name: `#${entry.number} ${entry.title}`,
        href: `/board/items/${entry.number}`,
        detail: plural(entry.runs, "run"),
      })),
    );
    replaceChildren(
      field(root, "by-agent"),
      barList(costs.by_agent, (entry) => {
        const used = `${tokens(entry.input_tokens)} in / ${tokens(entry.output_tokens)} out`;
        return { name: entry.agent, detail: `${plural(entry.runs, "run")} · ${used}` };
      }),
    );
  }
  // The store reads the costs again after every reload and every run's end.
  const unsubscribe = subscribe((change) => {
    if (change.type === "costs") show(change.costs);
  });
  const resized = new ResizeObserver(() => latest && drawDays());
  resized.observe(field(root, "by-day"));
  load();
  return {
    title: "Costs",
    unmount() {
      unsubscribe();
      resized.disconnect();
    },
  };
}
