// SV4D2 Cameras editor: a top view of the orbit with draggable view markers (azimuth) and one elevation
// control per view. The value is the node's `cameras` JSON {"elevations_deg": [...], "azimuths_deg": [...]}
// (input view first, V + 1 entries). The preset layouts (official 4-view / 8-view, dense = both merged, orthogonal +
// elevated), their labels and which model samples each view come from the backend (GET /sv4d2/camera_presets).
import {
  addEditorWidget, button, clientPosition, element, fitCanvas, forwardWheel, getJSON, injectStyles, jsonBox,
  registerOnce, trackPointer, watchSize,
} from "./sv4d2_common.js";

const WIDGET = "SV4D2_CAMERAS_EDITOR";
const MARKER_RADIUS = 9;
const MIN_HEIGHT = 300;
const CUSTOM = "custom";

let presets = null;
const presetsLoaded = getJSON("/sv4d2/camera_presets").then(
  (layouts) => { presets = layouts; },
  (error) => console.warn("SV4D2: camera presets unavailable", error),
);

// Marker colours: the input view, and the novel views by the model pass that samples them.
const INPUT_COLOUR = "#ffcc33";
const PASS_COLOURS = { "4v": "#6fc3ff", "8v": "#c59bff", both: "#7ee08a" };

// The preset combo's values name the layouts ("4v", "dense", …; older labels such as "4 views (official)").
function layoutKey(presetValue) {
  const value = String(presetValue ?? "");
  if (presets?.[value]) return value;
  const match = /^([48])/.exec(value);
  return match ? `${match[1]}v` : null;
}

function parseCameras(text) {
  let raw;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { error: `cameras is not valid JSON (${error.message})` };
  }
  const ok = (list) => Array.isArray(list) && list.every((x) => typeof x === "number" && Number.isFinite(x));
  if (!raw || !ok(raw.elevations_deg) || !ok(raw.azimuths_deg)) {
    return { error: 'cameras needs numeric "elevations_deg" and "azimuths_deg" lists (input view first)' };
  }
  if (raw.elevations_deg.length !== raw.azimuths_deg.length || raw.azimuths_deg.length < 2) {
    return { error: "cameras needs one elevation per azimuth and at least the input view plus one novel view" };
  }
  return { cameras: { elevations_deg: [...raw.elevations_deg], azimuths_deg: [...raw.azimuths_deg] } };
}

const normaliseAngle = (degrees) => ((degrees % 360) + 360) % 360;

class CameraEditor {
  constructor(node, text) {
    this.node = node;
    this.text = text;
    this.cameras = null;
    this.error = null;
    this.drag = null;
    this.hover = null;
    this.onChange = () => {};
    this.build();
    this.setText(text);
  }

  build() {
    this.root = element("div", "sv4d2-editor sv4d2-cameras");
    const bar = element("div", "sv4d2-toolbar");
    this.toolbar = bar;
    bar.append(button("{ }", () => this.toggleJson(), "Edit the cameras as JSON"));
    this.canvas = element("canvas", "sv4d2-canvas");
    this.list = element("div", "sv4d2-view-list");
    const body = element("div", "sv4d2-cameras-body");
    body.append(this.canvas, this.list);
    this.status = element("div", "sv4d2-status");
    this.json = jsonBox((text) => { this.setText(text); this.edited(false); });
    this.root.append(bar, body, this.status, this.json);
    trackPointer(this.canvas, {
      start: (p) => this.startDrag(p),
      drag: (p, e) => this.dragTo(p, e),
      end: () => { this.drag = null; this.draw(); },
      hover: (p) => this.hoverAt(p),
    });
    this.canvas.addEventListener("pointerleave", () => this.hoverAt({ x: -1e9, y: -1e9 }));
    forwardWheel(this.canvas);
    watchSize(this.canvas, () => this.draw());
  }

  // ---- value, preset combo ---------------------------------------------------------------------------------

  // One button per preset layout the backend serves, before the JSON toggle.
  addPresetButtons() {
    if (!presets || this.toolbar.querySelector(".sv4d2-preset")) return;
    const buttons = Object.entries(presets).map(([key, layout]) => {
      const models = layout.passes.map((p) => `${p[0]}-view`).join(" + ");
      const tip = `${layout.azimuths_deg.length - 1} views, ${models} model`;
      const presetButton = button(layout.label, () => this.pickPreset(key), tip);
      presetButton.classList.add("sv4d2-preset");
      return presetButton;
    });
    this.toolbar.prepend(...buttons);
  }

  setText(text) {
    this.text = typeof text === "string" ? text : JSON.stringify(text);
    const { cameras, error } = parseCameras(this.text);
    this.error = error ?? null;
    if (cameras) this.cameras = cameras;
    if (document.activeElement !== this.json) this.json.value = this.text;
    this.rebuildList();
    this.draw();
  }

  presetWidget() {
    return this.node.widgets?.find((w) => w.name === "preset");
  }

  // What the node will use: the official layout while its preset combo names one, else the JSON.
  effectiveCameras() {
    const key = layoutKey(this.presetWidget()?.value);
    if (key && presets?.[key]) {
      const elevation = Number(this.node.widgets?.find((w) => w.name === "elevation_deg")?.value ?? 0);
      const layout = presets[key];  // served with the input view at elevation 0
      const elevations = layout.elevations_deg.map((e) => e + elevation);
      return { elevations_deg: elevations, azimuths_deg: [...layout.azimuths_deg] };
    }
    return this.error ? null : this.cameras;
  }

  async pickPreset(key) {
    await presetsLoaded;
    const combo = this.presetWidget();
    const option = combo?.options?.values?.find((v) => layoutKey(v) === key);
    if (combo && option !== undefined) {
      combo.value = option;
      combo.callback?.(option); // shows the layout (see nodeCreated)
    }
  }

  // The preset combo changed (or a preset button was pressed): show and store that layout.
  showPreset() {
    const cameras = layoutKey(this.presetWidget()?.value) ? this.effectiveCameras() : null;
    if (!cameras) return;
    this.setText(JSON.stringify(cameras));
    this.edited(false);
  }

  // A marker or elevation edit makes the cameras custom.
  commit(toCustom = true) {
    this.setText(JSON.stringify(this.cameras));
    this.edited(toCustom);
  }

  edited(toCustom) {
    const combo = this.presetWidget();
    if (toCustom && combo && combo.value !== CUSTOM && combo.options?.values?.includes(CUSTOM)) {
      combo.value = CUSTOM;
      combo.callback?.(CUSTOM);
    }
    this.onChange();
    dispatchEvent(new CustomEvent("sv4d2:cameras-changed", { detail: { node: this.node } }));
  }

  toggleJson() {
    this.json.hidden = !this.json.hidden;
    this.json.value = this.text;
  }

  // ---- elevation list --------------------------------------------------------------------------------------

  rebuildList() {
    const shown = this.effectiveCameras();
    if (!shown) {
      this.list.replaceChildren();
      return;
    }
    const count = shown.azimuths_deg.length;
    if (this.list.children.length !== count) {
      this.list.replaceChildren(...shown.azimuths_deg.map((_, i) => this.elevationRow(i)));
    }
    [...this.list.children].forEach((row, i) => {
      const [, slider, number] = row.children;
      const value = shown.elevations_deg[i];
      if (document.activeElement !== slider) slider.value = value;
      if (document.activeElement !== number) number.value = value;
    });
  }

  elevationRow(i) {
    const row = element("div", `sv4d2-view-row${i === 0 ? " sv4d2-input-view" : ""}`);
    const label = element("span", "", { textContent: i === 0 ? "input" : `v${i - 1}`, title: "elevation (degrees)" });
    const slider = element("input", "", { type: "range", min: -89, max: 89, step: 1, title: "elevation (degrees)" });
    const number = element("input", "sv4d2-number", { type: "number", min: -89, max: 89, step: 0.5 });
    const set = (value) => {
      const cameras = this.editableCameras();
      cameras.elevations_deg[i] = Math.min(Math.max(Number(value) || 0, -89), 89);
      this.cameras = cameras;
      this.commit();
    };
    slider.addEventListener("input", () => set(slider.value));
    number.addEventListener("change", () => set(number.value));
    row.append(label, slider, number);
    return row;
  }

  editableCameras() {
    return structuredClone(this.effectiveCameras() ?? this.cameras);
  }

  // ---- top view --------------------------------------------------------------------------------------------

  geometry() {
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    return { cx: width / 2, cy: height / 2, radius: Math.max(10, Math.min(width, height) / 2 - 24) };
  }

  // Seen from above (+y towards the viewer): x right, z down, so azimuth a sits at (sin a, cos a) and grows
  // counter-clockwise, the convention of sv4d_lib/cameras.py; a camera at elevation e is cos e from the centre.
  markerPoint(azimuth, g = this.geometry(), elevation = 0) {
    const a = (azimuth * Math.PI) / 180;
    const r = g.radius * Math.cos((elevation * Math.PI) / 180);
    return { x: g.cx + r * Math.sin(a), y: g.cy + r * Math.cos(a) };
  }

  // The marker colour of camera i: by the model pass that samples it when a preset layout is shown.
  markerColour(i) {
    if (i === 0) return INPUT_COLOUR;
    const sampledBy = presets?.[layoutKey(this.presetWidget()?.value)]?.sampled_by?.[i] ?? [];
    return PASS_COLOURS[sampledBy.length > 1 ? "both" : sampledBy[0]] ?? PASS_COLOURS["4v"];
  }

  markerAt(p) {
    const shown = this.effectiveCameras();
    if (!shown) return -1;
    const g = this.geometry();
    let best = -1;
    let bestDistance = MARKER_RADIUS + 4;
    shown.azimuths_deg.forEach((a, i) => {
      const m = this.markerPoint(a, g, shown.elevations_deg[i]);
      const distance = Math.hypot(m.x - p.x, m.y - p.y);
      if (distance <= bestDistance) [best, bestDistance] = [i, distance];
    });
    return best;
  }

  startDrag(p) {
    const index = this.markerAt(p);
    this.drag = index < 0 ? null : { index };
    return Boolean(this.drag);
  }

  hoverAt(p) {
    const hover = this.markerAt(p);
    if (hover === this.hover) return;
    this.hover = hover;
    this.draw();
  }

  dragTo(p, event) {
    const g = this.geometry();
    const snap = event.shiftKey ? 15 : 1;
    const azimuth = normaliseAngle(Math.round(((Math.atan2(p.x - g.cx, p.y - g.cy) * 180) / Math.PI) / snap) * snap);
    const cameras = this.editableCameras();
    cameras.azimuths_deg[this.drag.index] = azimuth;
    this.cameras = cameras;
    this.commit();
  }

  // Client coordinates of camera i's marker (used by the browser tests).
  markerClientPoint(i) {
    const shown = this.effectiveCameras();
    return shown && clientPosition(this.canvas, this.markerPoint(shown.azimuths_deg[i], undefined,
                                                                 shown.elevations_deg[i]));
  }

  draw() {
    const shown = this.effectiveCameras();
    this.root.classList.toggle("sv4d2-has-error", Boolean(this.error) && !layoutKey(this.presetWidget()?.value));
    this.status.textContent = this.describe(shown);
    if (!this.canvas.isConnected || this.canvas.clientWidth < 2) return;
    const { ctx } = fitCanvas(this.canvas);
    const g = this.geometry();
    ctx.strokeStyle = "#666";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.arc(g.cx, g.cy, g.radius, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillStyle = "#777";
    ctx.fillRect(g.cx - 7, g.cy - 7, 14, 14); // the object
    if (!shown) return;
    ctx.font = "10px sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    shown.azimuths_deg.forEach((azimuth, i) => {
      const elevation = shown.elevations_deg[i];
      const m = this.markerPoint(azimuth, g, elevation);
      const colour = this.markerColour(i);
      ctx.strokeStyle = colour;
      ctx.globalAlpha = 0.5;
      ctx.beginPath();
      ctx.moveTo(g.cx, g.cy);
      ctx.lineTo(m.x, m.y);
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.beginPath();
      ctx.arc(m.x, m.y, MARKER_RADIUS, 0, 2 * Math.PI);
      ctx.fillStyle = i === this.drag?.index || i === this.hover ? "#ffffff" : colour;
      ctx.fill();
      ctx.fillStyle = "#111";
      ctx.fillText(i === 0 ? "in" : `v${i - 1}`, m.x, m.y);
      // the azimuth outside the ring; a view above or below the input's ring gets its height, inwards
      const raised = Math.round(elevation - shown.elevations_deg[0]);
      const labelRadius = raised
        ? Math.max(g.radius * Math.cos((elevation * Math.PI) / 180) - MARKER_RADIUS - 9, 0)
        : g.radius + MARKER_RADIUS + 8;
      const label = this.markerPoint(azimuth, { ...g, radius: labelRadius });
      ctx.fillStyle = "#aaa";
      ctx.fillText(raised ? `${raised > 0 ? "+" : ""}${raised}°` : `${Math.round(azimuth)}°`, label.x, label.y);
    });
  }

  describe(shown) {
    const combo = this.presetWidget()?.value;
    const layout = presets?.[layoutKey(combo)];
    if (layout) {
      const views = `${layout.label}: ${layout.azimuths_deg.length - 1} views`;
      if (layout.passes.length > 1) {
        return `${views} = the 4-view model's layout (blue) + the 8-view model's (violet), green in both: ` +
          "sample each with its own model and camera preset, then SV4D2 Merge Views";
      }
      return `${views} for the ${layout.passes[0][0]}-view model · drag a marker to customise`;
    }
    if (layoutKey(combo)) return `preset ${combo} · drag a marker to customise`;
    if (this.error) return this.error;
    return `${shown.azimuths_deg.length - 1} novel views · drag markers (Shift: 15° steps), elevations on the right`;
  }
}

const EXTENSION = "SV4D2.CameraEditor";
registerOnce({
  name: EXTENSION,
  getCustomWidgets() {
    return {
      [WIDGET](node, inputName, inputData) {
        injectStyles();
        const editor = new CameraEditor(node, inputData?.[1]?.default ?? "");
        const widget = addEditorWidget(node, inputName, WIDGET, editor.root, editor, inputData, MIN_HEIGHT);
        presetsLoaded.then(() => { editor.addPresetButtons(); editor.rebuildList(); editor.draw(); });
        return { widget, minWidth: 440, minHeight: MIN_HEIGHT + 60 };
      },
    };
  },
  nodeCreated(node) {
    const editor = node.widgets?.find((w) => w.type === WIDGET)?.element?.sv4d2Editor;
    if (!editor) return;
    // The preset combo and the elevation of the official layouts change what the editor shows.
    for (const name of ["preset", "elevation_deg"]) {
      const widget = node.widgets.find((w) => w.name === name);
      if (!widget) continue;
      const callback = widget.callback;
      widget.callback = function (...args) {
        const result = callback?.apply(this, args);
        if (name === "preset") editor.showPreset();
        editor.rebuildList();
        editor.draw();
        dispatchEvent(new CustomEvent("sv4d2:cameras-changed", { detail: { node } }));
        return result;
      };
    }
  },
});
