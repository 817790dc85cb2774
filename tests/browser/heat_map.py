"""What a CFG grid editor really drew: the colour of every heat-map cell, read back from its canvas pixels.

The expected colour of a cell comes from the served scales through the viridis ramp the editor documents (five
stops of matplotlib's viridis, linear in between, over the grid's min..max), written out here independently of
web/sv4d2_common.js, so an editor that draws nothing, draws stale cells or the wrong colours fails.
"""
from __future__ import annotations

import numpy as np

VIRIDIS_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)

# Each cell sampled a few pixels inside its lower-left corner: away from the value text (centre), the override
# mark (upper-right corner) and the hover outline (2 px along the edges).
READ_CELLS = """(editorExpression) => {
  const e = eval(editorExpression);
  const canvas = e.canvas;
  const lay = e.layout(canvas.clientWidth, canvas.clientHeight);
  const k = canvas.width / canvas.clientWidth;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const cells = [];
  for (let t = 0; t < lay.frames; t++) {
    const row = [];
    for (let v = 0; v < lay.views; v++) {
      const x = Math.round((lay.heat.x + t * lay.cellW + Math.min(6, lay.cellW / 3)) * k);
      const y = Math.round((lay.heat.y + (v + 1) * lay.cellH - Math.min(6, lay.cellH / 3)) * k);
      const i = (y * canvas.width + x) * 4;
      row.push([pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]]);
    }
    cells.push(row);
  }
  return {cells, scales: e.reply?.scales ?? null, status: e.status.textContent, error: e.error};
}"""


def viridis(u: np.ndarray) -> np.ndarray:
    """RGB (0-255) of values u in [0, 1] on the five-stop viridis ramp."""
    x = np.clip(u, 0.0, 1.0) * (len(VIRIDIS_STOPS) - 1)
    i = np.minimum(np.floor(x).astype(int), len(VIRIDIS_STOPS) - 2)
    f = (x - i)[..., None]
    return np.round(VIRIDIS_STOPS[i] + (VIRIDIS_STOPS[i + 1] - VIRIDIS_STOPS[i]) * f)


def assert_heat_map_drawn(page, editor_expression: str) -> np.ndarray:
    """Every cell of the editor's heat map is painted, opaque, in the colour of its served scale; returns the
    scales [T, V]."""
    drawn = page.evaluate(READ_CELLS, editor_expression)
    assert drawn["error"] is None, drawn["error"]
    assert drawn["scales"] is not None, f"no grid was served; the status line says {drawn['status']!r}"
    assert drawn["status"] != "…", "the status line never left its placeholder"
    scales = np.array(drawn["scales"], float)
    cells = np.array(drawn["cells"], float)
    assert cells.shape[:2] == scales.shape, (cells.shape, scales.shape)
    assert (cells[..., 3] == 255).all(), "some heat-map cells are not painted (transparent canvas pixels)"
    span = scales.max() - scales.min() or 1.0
    expected = viridis((scales - scales.min()) / span)
    worst = np.abs(cells[..., :3] - expected).max()
    assert worst <= 3, f"heat-map colours differ from the served scales by up to {worst:.0f}/255"
    return scales
