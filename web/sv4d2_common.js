// Shared pieces of the SV4D2 editors: crisp canvases, colours, server calls and a JSON text fallback.
// The rules themselves (grids, presets) live in Python and are served by the pack's routes.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

export function injectStyles() {
  if (document.getElementById("sv4d2-styles")) return;
  const link = document.createElement("link");
  link.id = "sv4d2-styles";
  link.rel = "stylesheet";
  link.href = new URL("./sv4d2.css", import.meta.url).href;
  document.head.append(link);
}

// Size the backing store to CSS size × device pixel ratio × on-screen zoom, so drawings stay sharp on
// high-DPI screens and when the graph is zoomed in; returns a context that draws in CSS pixels.
export function fitCanvas(canvas) {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  const zoom = canvas.getBoundingClientRect().width / Math.max(width, 1);
  const scale = (window.devicePixelRatio || 1) * Math.max(zoom, 1);
  const pixelWidth = Math.max(1, Math.round(width * scale));
  const pixelHeight = Math.max(1, Math.round(height * scale));
  if (canvas.width !== pixelWidth || canvas.height !== pixelHeight) {
    canvas.width = pixelWidth;
    canvas.height = pixelHeight;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

// Pointer position in the canvas's CSS pixels (the graph zoom scales DOM widgets with a CSS transform).
export function pointerPosition(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * canvas.clientWidth) / Math.max(rect.width, 1),
    y: ((event.clientY - rect.top) * canvas.clientHeight) / Math.max(rect.height, 1),
  };
}

// The inverse, for tests and tools: client coordinates of a point given in canvas CSS pixels.
export function clientPosition(canvas, point) {
  const rect = canvas.getBoundingClientRect();
  return {
    x: rect.left + (point.x * rect.width) / Math.max(canvas.clientWidth, 1),
    y: rect.top + (point.y * rect.height) / Math.max(canvas.clientHeight, 1),
  };
}

// Pointer handling of an editor canvas: `start(p, event)` returns true to begin a drag (the pointer is then
// captured), `drag(p, event)` follows it, `end()` runs on release and `hover(p)` on moves without a drag.
export function trackPointer(canvas, { start, drag, end, hover }) {
  let dragging = false;
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || !start(pointerPosition(canvas, event), event)) return;
    event.preventDefault();
    event.stopPropagation();
    canvas.setPointerCapture(event.pointerId);
    dragging = true;
  });
  canvas.addEventListener("pointermove", (event) => {
    const p = pointerPosition(canvas, event);
    if (dragging) drag(p, event);
    else hover?.(p, event);
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!dragging) return;
    dragging = false;
    canvas.releasePointerCapture?.(event.pointerId);
    end();
  });
}

// Redraw when the element changes size (node resized) or the screen's pixel ratio changes.
export function watchSize(element, redraw) {
  new ResizeObserver(() => redraw()).observe(element);
  const watchRatio = () => {
    matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener(
      "change", () => { redraw(); watchRatio(); }, { once: true });
  };
  watchRatio();
}

// Wheel over a canvas zooms the graph, as over any other part of a node. Frontends without the litegraph
// handler (or whose Vue nodes forward wheels themselves) get the event untouched.
export function forwardWheel(element) {
  element.addEventListener("wheel", (event) => {
    if (typeof app.canvas?.processMouseWheel !== "function") return;
    event.preventDefault();
    app.canvas.processMouseWheel(event);
  }, { passive: false });
}

// Register an extension once, even if the web folder is served under two names (WEB_DIRECTORY and pyproject's
// [tool.comfy] web) and so evaluated twice; a page-wide set, because `app.extensions` is deprecated.
export function registerOnce(extension) {
  const registered = (globalThis[Symbol.for("sv4d2.extensions")] ??= new Set());
  if (registered.has(extension.name)) return;
  registered.add(extension.name);
  app.registerExtension(extension);
}

// Viridis, sampled at 5 stops: perceptually ordered and readable for colour-blind users.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

export function colour(u) {
  const x = Math.min(Math.max(Number.isFinite(u) ? u : 0, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const rgb = VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
  return `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
}

export function textColour(u) {
  return u > 0.55 ? "#111" : "#f4f4f4";
}

export async function getJSON(route) {
  const response = await api.fetchApi(route);
  return response.json();
}

export async function postJSON(route, body) {
  const response = await api.fetchApi(route, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

export function element(tag, className, properties = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return Object.assign(node, properties);
}

export function select(options, value, onChange, title) {
  const box = element("select", "sv4d2-select", { title });
  for (const [optionValue, label] of options) box.append(new Option(label, optionValue));
  box.value = value;
  box.addEventListener("change", () => onChange(box.value));
  return box;
}

export function button(label, onClick, title) {
  const node = element("button", "sv4d2-button", { textContent: label, title, type: "button" });
  node.addEventListener("click", onClick);
  return node;
}

// A hideable JSON text box: the widget's raw value, editable by hand. Bad text is kept as typed (it is what
// the backend will see and refuse); `onText` decides what is wrong with it.
export function jsonBox(onText) {
  const box = element("textarea", "sv4d2-json", { spellcheck: false });
  box.addEventListener("input", () => onText(box.value));
  box.addEventListener("keydown", (event) => event.stopPropagation()); // no graph shortcuts while typing
  box.hidden = true;
  return box;
}

// Add the DOM widget the way core text widgets are added; `editor` exposes `text` and `setText`.
// The editor has an intrinsic minimum height: the classic canvas sizes DOM widgets from `getMinHeight`, but the
// Vue node renderer ("Nodes 2.0") puts them in an auto-height grid row, where a bare `height: 100%` is 0 px.
export function addEditorWidget(node, inputName, type, root, editor, inputData, minHeight) {
  root.style.minHeight = `${minHeight}px`;
  const widget = node.addDOMWidget(inputName, type, root, {
    getValue: () => editor.text,
    setValue: (value) => editor.setText(value),
    getMinHeight: () => minHeight,
    hideOnZoom: false,
  });
  widget.options.socketless = inputData?.[1]?.socketless ?? true;
  editor.onChange = () => widget.callback?.(widget.value);
  root.sv4d2Editor = editor; // for tests and other extensions
  return widget;
}
