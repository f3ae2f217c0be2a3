// The live view of a Parallax pipeline. Polls /api/pipeline (LiveView.snapshot, see
// src/parallax/pipeline/_view.py) once a second and redraws: the graph as SVG from the
// server's layout (column, row per element), the element table with a rate plot per
// element, and the errors and warnings seen on the bus. No libraries, no network but
// this server. Text goes in with textContent only: names and caps are never markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 216;
const NODE_H = 124;
const GAP_X = 96; // room for a caps label between columns
const GAP_Y = 34;
const MARGIN = 24;
const PALETTE = ["#3b6fb6", "#c2410c", "#15803d", "#7e22ce", "#0e7490", "#a16207", "#be185d"];

let updates = 0;
const colours = new Map(); // process id -> colour, stable for the page's life

function colourOf(id) {
  if (!colours.has(id)) colours.set(id, PALETTE[colours.size % PALETTE.length]);
  return colours.get(id);
}

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function html(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

function count(n) { return Math.round(n).toLocaleString("en-US"); }

function rate(n) { return n >= 100 ? count(n) : n.toFixed(1); }

function shorten(text, most) {
  return text.length <= most ? text : `${text.slice(0, most - 1)}…`;
}

// What an element handles: what reached it, or for a source what it pushed (as _view.py).
function handled(m) {
  if (m.buffers_in || !m.buffers_out) return [m.buffers_in || 0, m.bytes_in || 0];
  return [m.buffers_out, m.bytes_out || 0];
}

function position(e) {
  return { x: MARGIN + e.column * (NODE_W + GAP_X), y: MARGIN + e.row * (NODE_H + GAP_Y) };
}

function padY(e, pad, direction) {
  const pads = e.pads.filter((p) => p.direction === direction);
  const i = pads.findIndex((p) => p.name === pad);
  return position(e).y + ((i + 1) * NODE_H) / (pads.length + 1);
}

// A rate plot: the history as a line over a faint area, scaled to its own peak.
function spark(parent, x, y, w, h, values, colour) {
  parent.appendChild(el("rect", { x, y, width: w, height: h, class: "fill-bg", rx: 2 }));
  if (values.length < 2) return;
  const peak = Math.max(...values, 1e-9);
  const step = w / (values.length - 1);
  const pts = values.map((v, i) => `${(x + i * step).toFixed(1)},${(y + h - (v / peak) * (h - 2) - 1).toFixed(1)}`);
  parent.appendChild(el("polygon", {
    points: `${x},${y + h} ${pts.join(" ")} ${x + w},${y + h}`, class: "spark-area", fill: colour,
  }));
  parent.appendChild(el("polyline", { points: pts.join(" "), class: "spark", stroke: colour }));
}

function drawNode(svg, e) {
  const { x, y } = position(e);
  const colour = colourOf(e.process.id);
  const [buffers] = handled(e.metrics);
  const g = el("g", {
    class: `node${e.errors ? " has-errors" : ""}`,
    "data-element": e.name,
    "data-buffers": buffers,
    "data-process": e.process.id,
  });
  g.appendChild(el("title", {}, `${e.name} (${e.factory})\n${e.process.label} ${e.process.where}`));
  g.appendChild(el("rect", { x, y, width: NODE_W, height: NODE_H, rx: 7, class: "node-box", stroke: colour }));
  g.appendChild(el("rect", { x, y, width: NODE_W, height: 6, rx: 3, fill: colour }));
  const left = x + 16;
  g.appendChild(el("text", { x: left, y: y + 24, class: "node-name" }, shorten(e.name, 24)));
  // The colour and the legend say which process; the line says which one of its kind.
  const where = e.process.id === "main" ? e.factory : `${e.factory} · ${e.process.where}`;
  g.appendChild(el("text", { x: left, y: y + 40, class: "node-sub" }, shorten(where, 31)));
  g.appendChild(el("text", { x: left, y: y + 58, class: "rate" },
    `${rate(e.rates.buffers_per_s)} buf/s  ${bytes(e.rates.bytes_per_s)}/s`));
  const total = e.errors ? `${e.errors} error${e.errors > 1 ? "s" : ""}` : `${count(buffers)} buffers`;
  g.appendChild(el("text", { x: left, y: y + 74, class: e.errors ? "rate error-text" : "rate" }, total));
  if (e.fill !== null && e.fill !== undefined) {
    const w = NODE_W - 32;
    g.appendChild(el("rect", { x: left, y: y + 82, width: w, height: 7, rx: 3, class: "fill-bg" }));
    g.appendChild(el("rect", {
      x: left, y: y + 82, width: Math.max(w * e.fill, 1), height: 7, rx: 3,
      class: `fill-bar${e.fill > 0.8 ? " high" : ""}`,
    }));
    g.appendChild(el("title", {}, `queue fill ${Math.round(e.fill * 100)}%`));
  }
  // Request pads (a tee's src_0, src_1...) are labelled at the right edge: leave them room.
  const named = e.pads.some((p) => p.direction === "src" && p.name !== "src");
  spark(g, left, y + 96, NODE_W - 32 - (named ? 34 : 0), 20, e.history.buffers_per_s, colour);
  for (const direction of ["sink", "src"]) {
    for (const pad of e.pads.filter((p) => p.direction === direction)) {
      const py = padY(e, pad.name, direction);
      const px = direction === "sink" ? x - 5 : x + NODE_W - 5;
      const box = el("rect", { x: px, y: py - 5, width: 10, height: 10, rx: 2, class: "pad" });
      box.appendChild(el("title", {}, `${e.name}:${pad.name}\ncaps: ${pad.caps || pad.template_caps}`));
      g.appendChild(box);
      const label = direction === "sink"
        ? el("text", { x: x + 8, y: py + 14, class: "pad-name" }, pad.name)
        : el("text", { x: x + NODE_W - 8, y: py + 14, class: "pad-name", "text-anchor": "end" }, pad.name);
      if (pad.name !== "sink" && pad.name !== "src") g.appendChild(label);
    }
  }
  svg.appendChild(g);
}

function drawLink(svg, byName, link) {
  const a = byName.get(link.src);
  const b = byName.get(link.sink);
  if (!a || !b) return;
  const x1 = position(a).x + NODE_W + 5;
  const y1 = padY(a, link.src_pad, "src");
  const x2 = position(b).x - 5;
  const y2 = padY(b, link.sink_pad, "sink");
  const bend = Math.max((x2 - x1) / 2, 30);
  const path = el("path", {
    d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`, class: "link",
    "marker-end": "url(#arrow)",
  });
  // A link inside another process negotiates there: this process never hears its caps.
  const caps = link.caps || (a.process.id === "main" ? "not negotiated yet" : "negotiated elsewhere");
  path.appendChild(el("title", {}, `${link.src}:${link.src_pad} → ${link.sink}:${link.sink_pad}\n${caps}`));
  svg.appendChild(path);
  const label = el("text", { x: x2 - 8, y: y2 - 6, class: "caps", "text-anchor": "end" },
    link.caps ? shorten(link.caps, 17) : "");
  label.appendChild(el("title", {}, caps));
  svg.appendChild(label);
}

function drawGraph(data) {
  const svg = document.getElementById("graph");
  const byName = new Map(data.elements.map((e) => [e.name, e]));
  const columns = Math.max(0, ...data.elements.map((e) => e.column)) + 1;
  const rows = Math.max(0, ...data.elements.map((e) => e.row)) + 1;
  const width = 2 * MARGIN + columns * NODE_W + (columns - 1) * GAP_X;
  const height = 2 * MARGIN + rows * NODE_H + (rows - 1) * GAP_Y;
  // Drawn at its natural size where it fits, scaled down to the panel's width where not.
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.maxWidth = `${width}px`;
  svg.replaceChildren();
  const defs = el("defs");
  const marker = el("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto",
  });
  marker.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#7b8494" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const link of data.links) drawLink(svg, byName, link);
  for (const e of data.elements) drawNode(svg, e);
}

function plot(values, colour) {
  const svg = el("svg", { width: 150, height: 22, viewBox: "0 0 150 22" });
  spark(svg, 0, 1, 150, 20, values, colour);
  return svg;
}

function drawTable(data) {
  const body = document.querySelector("#elements tbody");
  const rows = [];
  const order = [...data.elements].sort((a, b) => a.column - b.column || a.row - b.row);
  for (const e of order) {
    const [buffers, nbytes] = handled(e.metrics);
    const colour = colourOf(e.process.id);
    const tr = html("tr", { "data-element": e.name });
    tr.appendChild(html("td", {}, e.name));
    tr.appendChild(html("td", {}, e.factory));
    const where = html("td", {});
    const swatch = html("span", { class: "swatch" });
    swatch.style.background = colour;
    where.append(swatch, `${e.process.label} ${e.process.where}`);
    tr.appendChild(where);
    tr.appendChild(html("td", { class: "num", "data-counter": "buffers" }, count(buffers)));
    tr.appendChild(html("td", { class: "num", "data-counter": "bytes" }, bytes(nbytes)));
    tr.appendChild(html("td", { class: "num" }, rate(e.rates.buffers_per_s)));
    tr.appendChild(html("td", { class: "num" }, `${bytes(e.rates.bytes_per_s)}/s`));
    const m = e.metrics;
    tr.appendChild(html("td", {}, e.fill === null || e.fill === undefined
      ? "" : `${m.level_buffers} (${Math.round(e.fill * 100)}%)`));
    tr.appendChild(html("td", { class: e.errors ? "num bad" : "num" }, String(e.errors)));
    tr.appendChild(html("td", { class: "num" }, String(e.warnings)));
    const cell = html("td", {});
    cell.appendChild(plot(e.history.buffers_per_s, colour));
    tr.appendChild(cell);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function drawMessages(data) {
  const list = document.getElementById("messages");
  if (!data.messages.length) {
    list.replaceChildren(html("li", { class: "muted" }, "none"));
    return;
  }
  list.replaceChildren(...data.messages.slice().reverse().map((m) =>
    html("li", { class: m.type }, `${m.time.toFixed(1)} s  ${m.type} from ${m.source}: ${m.text}`)));
}

function drawHeader(data) {
  document.getElementById("name").textContent = data.name;
  const errors = data.messages.some((m) => m.type === "ERROR");
  const state = errors ? "ERROR" : data.eos ? "EOS" : data.state;
  const badge = document.getElementById("state");
  badge.textContent = state;
  badge.className = `state ${state}`;
  document.getElementById("clock").textContent = `${data.time.toFixed(0)} s · pid ${data.pid}`;
  document.getElementById("status").textContent = `updated ${new Date().toLocaleTimeString("en-GB")}`;
  const legend = document.getElementById("legend");
  const seen = new Map();
  for (const e of data.elements) {
    if (!seen.has(e.process.id)) seen.set(e.process.id, `${e.process.label} ${e.process.where}`);
  }
  legend.replaceChildren(...[...seen].map(([id, label]) => {
    const li = html("li", { "data-process": id });
    const swatch = html("span", { class: "swatch" });
    swatch.style.background = colourOf(id);
    li.append(swatch, id === "main" ? label : `${id}: ${label}`);
    return li;
  }));
  document.body.dataset.state = state;
}

async function refresh() {
  try {
    const response = await fetch("/api/pipeline", { cache: "no-store" });
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const data = await response.json();
    drawHeader(data);
    drawGraph(data);
    drawTable(data);
    drawMessages(data);
    updates += 1;
    document.body.dataset.updates = String(updates);
  } catch (err) {
    const badge = document.getElementById("state");
    badge.textContent = "disconnected";
    badge.className = "state disconnected";
    document.getElementById("status").textContent = `no answer from the pipeline (${err.message}); retrying`;
  }
}

function loop() {
  refresh().finally(() => setTimeout(loop, 1000));
}

loop();
