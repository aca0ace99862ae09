// The latent map's questions about its points, asked in data coordinates on typed arrays, so
// they hold for any view and cost no rebuild when the view moves (static/map.js uses them
// through window.latentMapIndex):
//
// - the hover index: a uniform grid over the points' extent, filled by a counting sort (two
//   passes over n, three typed arrays), built once per map; the point nearest a place within a
//   radius looks only at the cells the radius touches;
// - the points inside a polygon (lasso or box): even-odd ray casting over the points inside the
//   polygon's bounding box.
//
// `xy` is the map's Float32Array of n interleaved (x, y) pairs, as the binary map carries it.
"use strict";

(() => {
  // about four points a cell on average, at most 1024 cells a side (4 MB of cell starts)
  function grid(xy) {
    const n = xy.length / 2;
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i];
      const y = xy[2 * i + 1];
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    const cols = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(n / 4))));
    const w = Math.max(x1 - x0, y1 - y0, 1e-9);
    const cell = (w / cols) * (1 + 1e-6); // the largest point falls inside the last cell
    const cellOf = new Uint32Array(n);
    const starts = new Uint32Array(cols * cols + 1);
    for (let i = 0; i < n; i++) {
      const cx = Math.floor((xy[2 * i] - x0) / cell);
      const cy = Math.floor((xy[2 * i + 1] - y0) / cell);
      const c = Math.min(cols - 1, cy) * cols + Math.min(cols - 1, cx);
      cellOf[i] = c;
      starts[c + 1]++;
    }
    for (let c = 1; c < starts.length; c++) starts[c] += starts[c - 1];
    const fill = starts.slice(0, -1);
    const items = new Uint32Array(n);
    for (let i = 0; i < n; i++) items[fill[cellOf[i]]++] = i;
    return { xy, x0, y0, cell, cols, starts, items };
  }

  // The row of the point nearest (x, y) within `radius` (data units), or −1. Of points at the
  // same distance the later row wins, as it is drawn over the earlier.
  function nearest(g, x, y, radius) {
    const { xy, x0, y0, cell, cols, starts, items } = g;
    const clampCell = (v) => Math.max(0, Math.min(cols - 1, Math.floor(v)));
    const ax = clampCell((x - radius - x0) / cell);
    const bx = clampCell((x + radius - x0) / cell);
    const ay = clampCell((y - radius - y0) / cell);
    const by = clampCell((y + radius - y0) / cell);
    if (x + radius < x0 || y + radius < y0) return -1;
    let best = -1;
    let bestD = radius * radius;
    for (let cy = ay; cy <= by; cy++) {
      for (let cx = ax; cx <= bx; cx++) {
        const c = cy * cols + cx;
        for (let j = starts[c]; j < starts[c + 1]; j++) {
          const i = items[j];
          const dx = xy[2 * i] - x;
          const dy = xy[2 * i + 1] - y;
          const d = dx * dx + dy * dy;
          if (d < bestD || (d === bestD && i > best)) {
            bestD = d;
            best = i;
          }
        }
      }
    }
    return best;
  }

  // Is (x, y) inside the polygon [[x, y], ...]? Even-odd rule: a ray to +x crosses its edges an
  // odd number of times. An edge counts where one end is above y and the other at or below it.
  function inside(polygon, x, y) {
    let odd = false;
    for (let a = 0, b = polygon.length - 1; a < polygon.length; b = a++) {
      const [xa, ya] = polygon[a];
      const [xb, yb] = polygon[b];
      if (ya > y !== yb > y && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) odd = !odd;
    }
    return odd;
  }

  // The rows of the points inside the polygon, ascending, as a Uint32Array.
  function within(xy, polygon) {
    const n = xy.length / 2;
    if (polygon.length < 3) return new Uint32Array(0);
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const [x, y] of polygon) {
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
    // the edges as flat arrays: the loop below runs for every point in the bounding box
    const m = polygon.length;
    const ex = new Float64Array(m + 1);
    const ey = new Float64Array(m + 1);
    polygon.forEach(([x, y], k) => {
      ex[k] = x;
      ey[k] = y;
    });
    ex[m] = ex[0];
    ey[m] = ey[0];
    const rows = [];
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i];
      const y = xy[2 * i + 1];
      if (x < x0 || x > x1 || y < y0 || y > y1) continue;
      let odd = false;
      for (let k = 0; k < m; k++) {
        const ya = ey[k];
        const yb = ey[k + 1];
        if (ya > y !== yb > y && x < ((ex[k + 1] - ex[k]) * (y - ya)) / (yb - ya) + ex[k]) {
          odd = !odd;
        }
      }
      if (odd) rows.push(i);
    }
    return Uint32Array.from(rows);
  }

  window.latentMapIndex = { grid, nearest, inside, within };
})();
