// SV4D2 CFG Grid editor: a views × frames heat map of the CFG scale the sampler will use.
// The value is the grid spec JSON of sv4d_lib/guidance.py; the grid drawn is computed by the backend
// (POST /sv4d2/cfg_grid), so the editor never re-implements the rules.
import {
  addEditorWidget, button, clientPosition, colour, element, fitCanvas, forwardWheel, getJSON, injectStyles,
  jsonBox, pointerPosition, postJSON, registerOnce, select, textColour, trackPointer, watchSize,
} from "./sv4d2_common.js";

const WIDGET = "SV4D2_CFG_GRID";
const ROUTE = "/sv4d2/cfg_grid";
const PRESETS = [["official_4v", "4 views (official)"], ["official_8v", "8 views (official)"], ["ramp", "ramp"]];
// Frames × views of the official models, shown when a preset is picked.
const OFFICIAL_SHAPES = { official_4v: [12, 4], official_8v: [5, 8] };
const EASINGS = [
  ["linear", "linear"], ["ease_in", "ease in"], ["ease_out", "ease out"], ["ease_in_out", "ease in-out"],
];
const easingOptions = (axis) => EASINGS.map(([value, label]) => [value, `${axis}: ${label}`]);
const HANDLE_RADIUS = 6;
const CELL_STEP = 0.01; // scale change per pixel when dragging a cell (Shift: ÷10)
const MIN_HEIGHT = 360;

// GET /sv4d2/cfg_grid: presets with their default params, easings, scale range.
let serverInfo = null;
const serverInfoLoaded = getJSON(ROUTE).then(
  (info) => { serverInfo = info; },
  (error) => console.warn("SV4D2: CFG grid presets unavailable", error),
);

// Plots under the heat map: which param each end handle edits.
function plotsFor(preset) {
  if (preset === "ramp") {
    return [
      { kind: "time", title: "along time", handles: ["min", "time_max"] },
      { kind: "view", title: "along view distance (0° → 180°)", handles: ["min", "view_max"] },
    ];
  }
  return [{ kind: "range", title: "scales, sorted (handles: min / max)", handles: ["min", "max"] }];
}

class GridEditor {
  constructor(node, text) {
    this.node = node;
    this.text = text;
    this.spec = null; // parsed spec, null while the text is not a JSON object
    this.shape = [12, 4];
    this.reply = null; // last good server reply
    this.error = null;
    this.hover = null;
    this.drag = null;
    this.pending = false;
    this.inFlight = false;
    this.onChange = () => {};
    this.build();
    this.setText(text);
    serverInfoLoaded.then(() => this.draw());
  }

  build() {
    this.root = element("div", "sv4d2-editor sv4d2-grid");
    this.presetBox = select(PRESETS, "official_4v", (p) => this.pickPreset(p), "Grid rule");
    this.framesBox = element("input", "sv4d2-number", { type: "number", min: 1, max: 64, title: "frames T" });
    this.viewsBox = element("input", "sv4d2-number", { type: "number", min: 1, max: 16, title: "views V" });
    for (const box of [this.framesBox, this.viewsBox]) box.addEventListener("change", () => this.pickShape());
    this.timeEasing = select(easingOptions("time"), "linear", (e) => this.setParam("time_easing", e),
      "Easing along time");
    this.viewEasing = select(easingOptions("views"), "linear", (e) => this.setParam("view_easing", e),
      "Easing along view distance");
    const reset = button("Reset", () => this.reset(), "Preset defaults, no overrides");
    this.jsonToggle = button("{ }", () => this.toggleJson(), "Edit the grid spec as JSON");
    const bar = element("div", "sv4d2-toolbar");
    bar.append(this.presetBox, this.framesBox, element("span", "sv4d2-times", { textContent: "×" }), this.viewsBox,
      this.timeEasing, this.viewEasing, reset, this.jsonToggle);
    this.canvas = element("canvas", "sv4d2-canvas");
    this.status = element("div", "sv4d2-status");
    this.json = jsonBox((text) => { this.setText(text); this.onChange(); });
    this.root.append(bar, this.canvas, this.status, this.json);
    trackPointer(this.canvas, {
      start: (p) => this.startDrag(p),
      drag: (p, e) => this.dragTo(p, e),
      end: () => { this.drag = null; this.draw(); },
      hover: (p) => this.hoverAt(p),
    });
    this.canvas.addEventListener("pointerleave", () => { this.hover = null; this.draw(); });
    this.canvas.addEventListener("dblclick", (e) => this.clearCell(e));
    forwardWheel(this.canvas);
    watchSize(this.canvas, () => this.draw());
  }

  // ---- value <-> spec -------------------------------------------------------------------------------------

  setText(text) {
    this.text = typeof text === "string" ? text : JSON.stringify(text);
    let parsed = null;
    try {
      parsed = JSON.parse(this.text);
    } catch { /* the backend explains what is wrong */ }
    this.spec = parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : null;
    const shape = this.spec?.shape;
    if (Array.isArray(shape) && shape.length === 2 && shape.every((n) => Number.isInteger(n) && n > 0)) {
      this.shape = [...shape];
    } else if (this.spec && OFFICIAL_SHAPES[this.spec.preset] && !shape) {
      this.shape = [...OFFICIAL_SHAPES[this.spec.preset]];
    }
    if (document.activeElement !== this.json) this.json.value = this.text;
    this.refresh();
  }

  // Every edit from the controls goes through here: a canonical spec that always records its shape.
  commit(spec) {
    const clean = { preset: spec.preset, params: spec.params ?? {} };
    const overrides = Object.entries(spec.overrides ?? {}).filter(([key]) => {
      const [t, v] = key.split(",").map(Number);
      return t < this.shape[0] && v < this.shape[1];
    });
    if (overrides.length) clean.overrides = Object.fromEntries(overrides);
    clean.shape = [...this.shape];
    this.setText(JSON.stringify(clean));
    this.onChange();
  }

  editableSpec() {
    return this.spec ? structuredClone(this.spec) : { preset: this.presetBox.value, params: {} };
  }

  async defaults(preset) {
    await serverInfoLoaded;
    return { ...(serverInfo?.presets?.[preset] ?? {}) };
  }

  async pickPreset(preset) {
    if (OFFICIAL_SHAPES[preset]) this.shape = [...OFFICIAL_SHAPES[preset]];
    this.commit({ preset, params: await this.defaults(preset) });
  }

  pickShape() {
    const frames = Math.max(1, Math.round(Number(this.framesBox.value) || 1));
    const views = Math.max(1, Math.round(Number(this.viewsBox.value) || 1));
    this.shape = [frames, views];
    this.commit(this.editableSpec());
  }

  async reset() {
    const preset = PRESETS.some(([p]) => p === this.spec?.preset) ? this.spec.preset : "official_4v";
    this.commit({ preset, params: await this.defaults(preset) });
  }

  setParam(name, value) {
    const spec = this.editableSpec();
    spec.params = { ...(spec.params ?? {}), [name]: value };
    this.commit(spec);
  }

  toggleJson() {
    this.json.hidden = !this.json.hidden;
    this.json.value = this.text;
    this.draw();
  }

  // ---- backend --------------------------------------------------------------------------------------------

  // The input view first, V + 1 entries, from a directly connected SV4D2 Cameras node's editor; null while
  // nothing is connected, and while the node is not in a graph yet (the widget is built before the node is
  // added, and newer frontends throw from getInputNode on a node without a graph).
  cameraAzimuths() {
    if (!this.node.graph) return null;
    const slot = this.node.inputs?.findIndex((input) => input.name === "cameras") ?? -1;
    const source = slot >= 0 ? this.node.getInputNode?.(slot) : null;
    const widget = source?.widgets?.find((w) => w.name === "cameras");
    const azimuths = widget?.element?.sv4d2Editor?.effectiveCameras()?.azimuths_deg;
    return Array.isArray(azimuths) ? azimuths : null;
  }

  async refresh() {
    if (this.inFlight) {
      this.pending = true;
      return;
    }
    this.inFlight = true; // released in `finally`, whatever throws, so the editor never stays stuck
    const text = this.text;
    try {
      const azimuths = this.cameraAzimuths();
      this.azimuths = azimuths?.length === this.shape[1] + 1 ? azimuths : null;
      const reply = await postJSON(ROUTE, {
        grid: text, num_frames: this.shape[0], num_views: this.shape[1], azimuths_deg: this.azimuths,
      });
      if (text === this.text) {
        this.error = reply.error ?? null;
        if (!reply.error) this.reply = reply;
        this.servedText = text; // what the heat map (or the error) now shows
      }
    } catch (error) {
      this.error = `the grid could not be computed (${error}); edit the grid or reload the page to retry`;
      this.servedText = text;
    } finally {
      this.inFlight = false;
    }
    if (this.pending) {
      this.pending = false;
      this.refresh();
      return;
    }
    this.draw();
  }

  // ---- layout ---------------------------------------------------------------------------------------------

  layout(width, height) {
    const [frames, views] = this.shape;
    const left = 44;
    const top = 16;
    const heatHeight = Math.max(40, Math.round((height - top) * 0.56));
    const heat = { x: left, y: top, w: Math.max(10, width - left - 8), h: heatHeight };
    const plotTop = top + heatHeight + 22;
    const plotHeight = Math.max(30, height - plotTop - 16);
    const plotSpecs = plotsFor(this.spec?.preset);
    const gap = 16;
    const plotWidth = (width - left - 8 - gap * (plotSpecs.length - 1)) / plotSpecs.length;
    const plots = plotSpecs.map((p, i) => ({
      ...p, x: left + i * (plotWidth + gap), y: plotTop, w: plotWidth, h: plotHeight,
    }));
    return { frames, views, heat, plots, cellW: heat.w / frames, cellH: heat.h / views };
  }

  // Value range of the plots, frozen while a handle is dragged so the handle stays under the pointer.
  valueRange() {
    if (this.drag?.range) return this.drag.range;
    const values = [...(this.reply?.scales?.flat() ?? [1, 2])];
    for (const p of plotsFor(this.spec?.preset)) for (const h of p.handles) values.push(this.paramValue(h));
    const finite = values.filter(Number.isFinite);
    const lo = Math.max(0, Math.floor((Math.min(...finite) - 0.25) * 2) / 2);
    const hi = Math.ceil((Math.max(...finite) + 0.25) * 2) / 2;
    return [lo, Math.max(hi, lo + 0.5)];
  }

  paramValue(name) {
    const value = this.spec?.params?.[name] ?? serverInfo?.presets?.[this.spec?.preset]?.[name];
    return Number(value);
  }

  handlePoints(lay) {
    const [lo, hi] = this.valueRange();
    const points = [];
    for (const plot of lay.plots) {
      plot.handles.forEach((param, end) => {
        const value = this.paramValue(param);
        points.push({
          plot: plot.kind, param, value,
          x: plot.x + end * plot.w,
          y: plot.y + plot.h - ((value - lo) / (hi - lo)) * plot.h,
        });
      });
    }
    return points;
  }

  cellAt(lay, x, y) {
    const t = Math.floor((x - lay.heat.x) / lay.cellW);
    const v = Math.floor((y - lay.heat.y) / lay.cellH);
    return t >= 0 && v >= 0 && t < lay.frames && v < lay.views ? { t, v } : null;
  }

  cellValue(t, v) {
    const override = this.spec?.overrides?.[`${t},${v}`];
    if (this.drag?.cell && override !== undefined) return Number(override); // optimistic while dragging
    return this.reply?.scales?.[t]?.[v];
  }

  // ---- pointer --------------------------------------------------------------------------------------------

  startDrag(p) {
    if (!this.spec || this.error) return false; // fix the text (or pick a preset) first
    const lay = this.layout(this.canvas.clientWidth, this.canvas.clientHeight);
    const handle = this.handlePoints(lay).find((h) => Math.hypot(h.x - p.x, h.y - p.y) <= HANDLE_RADIUS + 4);
    const cell = handle ? null : this.cellAt(lay, p.x, p.y);
    if (handle) {
      this.drag = { handle, plot: lay.plots.find((q) => q.kind === handle.plot), range: this.valueRange() };
    } else if (cell) {
      this.drag = { cell, startY: p.y, startValue: this.cellValue(cell.t, cell.v) ?? 1 };
    }
    return Boolean(this.drag);
  }

  hoverAt(p) {
    this.hover = this.cellAt(this.layout(this.canvas.clientWidth, this.canvas.clientHeight), p.x, p.y);
    this.draw();
  }

  dragTo(p, event) {
    const spec = this.editableSpec();
    if (this.drag.handle) {
      const [lo, hi] = this.drag.range;
      const u = (this.drag.plot.y + this.drag.plot.h - p.y) / this.drag.plot.h;
      spec.params = { ...(spec.params ?? {}), [this.drag.handle.param]: clampScale(lo + u * (hi - lo)) };
    } else {
      const { cell, startY, startValue } = this.drag;
      const step = event.shiftKey ? CELL_STEP / 10 : CELL_STEP;
      const value = clampScale(startValue + (startY - p.y) * step);
      spec.overrides = { ...(spec.overrides ?? {}), [`${cell.t},${cell.v}`]: value };
      this.hover = cell;
    }
    this.commit(spec);
  }

  clearCell(event) {
    const lay = this.layout(this.canvas.clientWidth, this.canvas.clientHeight);
    const p = pointerPosition(this.canvas, event);
    const cell = this.cellAt(lay, p.x, p.y);
    const key = cell && `${cell.t},${cell.v}`;
    if (!key || this.spec?.overrides?.[key] === undefined) return;
    const spec = this.editableSpec();
    delete spec.overrides[key];
    this.commit(spec);
  }

  // Client coordinates of a handle or a cell centre (used by the browser tests and by other tools).
  handleClientPoint(plot, param) {
    const lay = this.layout(this.canvas.clientWidth, this.canvas.clientHeight);
    const h = this.handlePoints(lay).find((q) => q.plot === plot && q.param === param);
    return h && clientPosition(this.canvas, h);
  }

  cellClientPoint(t, v) {
    const lay = this.layout(this.canvas.clientWidth, this.canvas.clientHeight);
    const centre = { x: lay.heat.x + (t + 0.5) * lay.cellW, y: lay.heat.y + (v + 0.5) * lay.cellH };
    return clientPosition(this.canvas, centre);
  }

  // ---- drawing --------------------------------------------------------------------------------------------

  syncControls() {
    const preset = this.spec?.preset;
    if (PRESETS.some(([p]) => p === preset)) this.presetBox.value = preset;
    if (document.activeElement !== this.framesBox) this.framesBox.value = this.shape[0];
    if (document.activeElement !== this.viewsBox) this.viewsBox.value = this.shape[1];
    const ramp = preset === "ramp";
    this.timeEasing.hidden = this.viewEasing.hidden = !ramp;
    if (ramp) {
      this.timeEasing.value = this.spec.params?.time_easing ?? "linear";
      this.viewEasing.value = this.spec.params?.view_easing ?? "linear";
    }
    this.root.classList.toggle("sv4d2-has-error", Boolean(this.error));
    this.status.textContent = this.error ?? this.describe();
  }

  describe() {
    const scales = this.reply?.scales?.flat() ?? [];
    if (!scales.length) return "…";
    const { t, v } = this.hover ?? {};
    if (this.hover && this.reply.scales[t]?.[v] !== undefined) {
      const azimuth = this.azimuths ? `${this.relativeAzimuth(v)}°, ` : "";
      const distance = this.reply.view_distance?.[v];
      const overridden = this.spec?.overrides?.[`${t},${v}`] !== undefined ? " (override; double-click clears)" : "";
      return `frame t=${t} · view v=${v} (${azimuth}distance ${distance?.toFixed(2)}) · ` +
        `scale ${this.cellValue(t, v).toFixed(3)}${overridden}`;
    }
    const [frames, views] = this.shape;
    const cameras = this.cameraAzimuths();
    const mismatch = cameras && !this.azimuths && ` · the cameras have ${cameras.length - 1} views: distances by index`;
    const range = `${Math.min(...scales).toFixed(2)}–${Math.max(...scales).toFixed(2)}`;
    return `${frames} frames × ${views} views · scales ${range}` +
      (mismatch || " · drag a cell to override it, a handle to tune");
  }

  // Azimuth of novel view v from the input view, in whole degrees [0, 360).
  relativeAzimuth(v) {
    return Math.round((((this.azimuths[v + 1] - this.azimuths[0]) % 360) + 360) % 360);
  }

  draw() {
    this.syncControls();
    if (!this.canvas.isConnected || this.canvas.clientWidth < 2) return;
    const { ctx, width, height } = fitCanvas(this.canvas);
    const lay = this.layout(width, height);
    ctx.font = "10px sans-serif";
    ctx.textBaseline = "middle";
    this.drawHeat(ctx, lay);
    if (this.error) {
      // the last good grid, greyed out: the sampler would not run with the current text
      ctx.fillStyle = "rgba(20, 20, 20, 0.75)";
      ctx.fillRect(lay.heat.x, lay.heat.y, lay.heat.w, lay.heat.h);
      ctx.fillStyle = "#ff6b6b";
      ctx.textAlign = "center";
      ctx.fillText("invalid grid, see below", lay.heat.x + lay.heat.w / 2, lay.heat.y + lay.heat.h / 2);
      return;
    }
    for (const plot of lay.plots) this.drawPlot(ctx, plot);
    for (const h of this.handlePoints(lay)) {
      ctx.beginPath();
      ctx.arc(h.x, h.y, HANDLE_RADIUS, 0, 2 * Math.PI);
      ctx.fillStyle = this.drag?.handle?.param === h.param ? "#ffcc33" : "#f4f4f4";
      ctx.fill();
      ctx.strokeStyle = "#222";
      ctx.lineWidth = 1.5;
      ctx.stroke();
    }
  }

  drawHeat(ctx, lay) {
    const { heat, frames, views, cellW, cellH } = lay;
    const scales = this.reply?.scales;
    ctx.fillStyle = "#888";
    ctx.textAlign = "center";
    const labelEvery = Math.ceil(18 / cellW);
    for (let t = 0; t < frames; t += labelEvery) ctx.fillText(`t${t}`, heat.x + (t + 0.5) * cellW, heat.y - 8);
    ctx.textAlign = "right";
    const rowEvery = Math.ceil(11 / cellH);
    for (let v = 0; v < views; v += rowEvery) {
      const azimuth = this.azimuths ? ` ${this.relativeAzimuth(v)}°` : "";
      ctx.fillText(`v${v}${azimuth}`, heat.x - 4, heat.y + (v + 0.5) * cellH);
    }
    if (!scales || scales.length !== frames || scales[0]?.length !== views) {
      ctx.strokeStyle = "#555";
      ctx.strokeRect(heat.x, heat.y, heat.w, heat.h);
      return;
    }
    const flat = scales.flat();
    const lo = Math.min(...flat);
    const span = Math.max(...flat) - lo || 1;
    ctx.textAlign = "center";
    for (let t = 0; t < frames; t++) {
      for (let v = 0; v < views; v++) {
        const value = this.cellValue(t, v);
        const u = (value - lo) / span;
        const x = heat.x + t * cellW;
        const y = heat.y + v * cellH;
        ctx.fillStyle = colour(u);
        ctx.fillRect(x, y, Math.ceil(cellW), Math.ceil(cellH));
        if (cellW >= 30 && cellH >= 13) {
          ctx.fillStyle = textColour(u);
          ctx.fillText(value.toFixed(2), x + cellW / 2, y + cellH / 2);
        }
        if (this.spec?.overrides?.[`${t},${v}`] !== undefined) {
          ctx.fillStyle = "#ff4d6d";
          ctx.beginPath();
          ctx.moveTo(x + cellW, y);
          ctx.lineTo(x + cellW - Math.min(8, cellW / 2), y);
          ctx.lineTo(x + cellW, y + Math.min(8, cellH / 2));
          ctx.fill();
        }
      }
    }
    if (this.hover) {
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.strokeRect(heat.x + this.hover.t * cellW + 1, heat.y + this.hover.v * cellH + 1, cellW - 2, cellH - 2);
    }
  }

  drawPlot(ctx, plot) {
    const [lo, hi] = this.valueRange();
    const y = (value) => plot.y + plot.h - ((value - lo) / (hi - lo)) * plot.h;
    ctx.strokeStyle = "#555";
    ctx.lineWidth = 1;
    ctx.strokeRect(plot.x, plot.y, plot.w, plot.h);
    ctx.fillStyle = "#999";
    ctx.textAlign = "left";
    ctx.fillText(plot.title, plot.x, plot.y - 9);
    ctx.textAlign = "right";
    ctx.fillText(hi.toFixed(1), plot.x - 4, plot.y + 4);
    ctx.fillText(lo.toFixed(1), plot.x - 4, plot.y + plot.h - 4);
    const curve = this.plotCurve(plot.kind);
    if (curve.length) {
      ctx.strokeStyle = "#6fc3ff";
      ctx.lineWidth = 2;
      ctx.beginPath();
      curve.forEach((value, i) => {
        const x = plot.x + (curve.length > 1 ? (i / (curve.length - 1)) * plot.w : plot.w / 2);
        if (i) ctx.lineTo(x, y(value)); else ctx.moveTo(x, y(value));
      });
      ctx.stroke();
    }
    if (plot.kind === "view") {
      // where each novel view sits on the distance axis
      ctx.fillStyle = "#6fc3ff";
      for (const distance of this.reply?.view_distance ?? []) {
        ctx.fillRect(plot.x + distance * plot.w - 1, plot.y + plot.h - 6, 2, 6);
      }
    }
  }

  plotCurve(kind) {
    if (!this.reply) return [];
    if (kind === "range") return [...this.reply.scales.flat()].sort((a, b) => a - b);
    return this.reply.profiles?.[kind] ?? [];
  }
}

function clampScale(value) {
  return Math.round(Math.min(Math.max(value, 0), 30) * 100) / 100;
}

const EXTENSION = "SV4D2.CFGGridEditor";
registerOnce({
  name: EXTENSION,
  getCustomWidgets() {
    return {
      [WIDGET](node, inputName, inputData) {
        injectStyles();
        const editor = new GridEditor(node, inputData?.[1]?.default ?? "");
        const widget = addEditorWidget(node, inputName, WIDGET, editor.root, editor, inputData, MIN_HEIGHT);
        const onConnectionsChange = node.onConnectionsChange;
        node.onConnectionsChange = function (...args) {
          onConnectionsChange?.apply(this, args);
          editor.refresh();
        };
        const camerasChanged = () => editor.refresh();
        addEventListener("sv4d2:cameras-changed", camerasChanged);
        const onRemoved = node.onRemoved;
        node.onRemoved = function (...args) {
          removeEventListener("sv4d2:cameras-changed", camerasChanged);
          return onRemoved?.apply(this, args);
        };
        return { widget, minWidth: 480, minHeight: MIN_HEIGHT + 80 };
      },
    };
  },
});
