// The latent map's pieces that hold no page state (static/map.js uses them through
// window.latentMap): its colours, the view that fits the points, the points written into a
// canvas's pixels, the hover index, the legend's marks, the SVG of a view and the marker's
// place for a z.
//
// A view maps data (x, y) to CSS px as (x·k + tx, ty − y·k): y up, as a plot is read.
"use strict";

(() => {
  function hexRgb(h) {
    return [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16));
  }
  // Tableau 10: distinct at a glance, and in order, for classes and unordered factors
  const CATEGORICAL = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"].map(hexRgb);
  // viridis at nine stops (matplotlib's), interpolated: ordered factors and latents
  const VIRIDIS = ["#440154", "#472c7a", "#3b518b", "#2c718e", "#21908d", "#27ad81", "#5cc863",
    "#aadc32", "#fde725"].map(hexRgb);
  const RAMP = 256; // steps of the continuous scale

  const css = ([r, g, b]) => `rgb(${r},${g},${b})`;
  const hex = (rgb) => "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
  function viridis(t) {
    const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
    const k = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const f = x - k;
    return VIRIDIS[k].map((v, c) => Math.round(v + f * (VIRIDIS[k + 1][c] - v)));
  }
  const categorical = (v) => CATEGORICAL[v % CATEGORICAL.length];
  const ramp = Array.from({ length: RAMP }, (_, j) => viridis(j / (RAMP - 1)));

  // What a map's points can be coloured by: its factors or class (the API's colour_by), then
  // each latent in the model's order (most informative first), named where it has a name. Only
  // a map that carries its μ offers the latents (past 20,000 points the binary map does not).
  function colourChoices(map) {
    const choices = map.colour_by.map((c) => ({ value: c.name, text: c.name, by: c }));
    if (!map.latents) return choices;
    for (const d of map.latent_order) {
      const name = map.latent_names[d];
      choices.push({ value: `z${d}`, text: name ? `z${d} — ${name}` : `z${d}`, latent: d });
    }
    return choices;
  }

  // Is a column's value v missing? Codes name their own (255, 65535, −1); numbers are NaN.
  const isMissing = (by, v) => (by.missing === null ? Number.isNaN(v) : v === by.missing || v < 0);

  // Each point's swatch (keys into swatches, [r, g, b]) and the legend, for a colour choice:
  // categories (a class, a named factor, a data set's categorical column) from the fixed
  // palette; an ordered factor (classes 0..size−1), a data set's ordered column (from its low to
  // its high value) or a latent (its μ from the 1st to the 99th percentile, so a few far points
  // do not wash the rest out) on the continuous scale. A data set's image with no value in the
  // column (a category −1, a number null) is grey, and the legend says so.
  const MISSING = [200, 200, 200];
  function colouring(map, value) {
    const choice = colourChoices(map).find((c) => c.value === value);
    const n = map.n;
    const keys = new Uint16Array(n);
    const by = choice.by;
    let missing = 0;
    if (by && (by.kind === "class" || by.names)) {
      const swatches = Array.from({ length: by.size }, (_, v) => categorical(v));
      const values = by.values;
      for (let i = 0; i < n; i++) {
        const v = values[i];
        const none = isMissing(by, v);
        if (none) missing++;
        keys[i] = none ? by.size : v;
      }
      const items = swatches.map((rgb, v) => ({ name: by.names ? by.names[v] : String(v), rgb }));
      if (missing) {
        swatches.push(MISSING);
        items.push({ name: `no value (${missing})`, rgb: MISSING });
      }
      return { keys, swatches, legend: { kind: "categories", title: by.name, items } };
    }
    let values, lo, hi, title;
    if (by && by.kind === "ordered") {
      [values, lo, hi, title] = [by.values, by.low, by.high, by.name];
      if (!(hi > lo)) hi = lo + 1;
    } else if (by) {
      [values, lo, hi, title] = [by.values, 0, Math.max(1, by.size - 1), by.name];
    } else {
      const D = map.latent_names.length;
      values = new Float32Array(n);
      for (let i = 0; i < n; i++) values[i] = map.latents[i * D + choice.latent];
      const sorted = Float64Array.from(values).sort();
      lo = sorted[Math.floor(0.01 * (n - 1))];
      hi = sorted[Math.ceil(0.99 * (n - 1))];
      if (hi <= lo) hi = lo + 1;
      title = `μ of ${choice.text}`;
    }
    const top = RAMP - 1;
    const none = by ? (v) => isMissing(by, v) : (v) => Number.isNaN(v);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (none(v)) {
        missing++;
        keys[i] = RAMP;
      } else {
        keys[i] = Math.max(0, Math.min(top, Math.round(((v - lo) / (hi - lo)) * top)));
      }
    }
    const text = (v) => (!by ? v.toFixed(2) : by.kind === "ordered" ? formatValue(v) : String(v));
    const legend = { kind: "ramp", title, loText: text(lo), hiText: text(hi) };
    if (missing) legend.missingText = `grey: no value (${missing})`;
    return { keys, swatches: missing ? [...ramp, MISSING] : ramp, legend };
  }

  // A column's number as a person reads it: three significant figures, no exponent for the
  // sizes a table holds
  function formatValue(v) {
    if (v === null || v === undefined) return "—";
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
  }

  // The view that shows every point (xy: interleaved x, y) on a side×side canvas, `pad` px from
  // its edges, centred.
  function fitView(xy, side, pad) {
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < xy.length; i += 2) {
      if (xy[i] < x0) x0 = xy[i];
      if (xy[i] > x1) x1 = xy[i];
      if (xy[i + 1] < y0) y0 = xy[i + 1];
      if (xy[i + 1] > y1) y1 = xy[i + 1];
    }
    const k = (side - 2 * pad) / (Math.max(x1 - x0, y1 - y0) || 1);
    return { k, tx: side / 2 - (k * (x0 + x1)) / 2, ty: side / 2 + (k * (y0 + y1)) / 2 };
  }

  // one opaque RGBA pixel as a Uint32Array over ImageData's bytes holds it on this machine
  const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const pack = ([r, g, b]) =>
    (littleEndian
      ? (255 << 24) | (b << 16) | (g << 8) | r
      : (r << 24) | (g << 16) | (b << 8) | 255) >>> 0;

  // pixel offsets (dx, dy) of a dot of `radius` device px
  function dot(radius) {
    const R = Math.ceil(radius);
    const offsets = [];
    for (let dy = -R; dy <= R; dy++) {
      for (let dx = -R; dx <= R; dx++) {
        if (dx * dx + dy * dy <= radius * radius + 0.5) offsets.push([dx, dy]);
      }
    }
    return offsets;
  }

  // Writes every point as a dot of its swatch's colour into `image` (an ImageData) over the
  // background (the 2-D canvas's path, where WebGL2 is not to be had; xy interleaved x, y). One
  // 32-bit store per pixel: no path, no per-point canvas call. Returns how many points fell on
  // the canvas.
  function plot(image, points, view, dpr, stamp, background) {
    const { xy, keys, swatches } = points;
    const W = image.width;
    const H = image.height;
    const buf = new Uint32Array(image.data.buffer);
    buf.fill(pack(background));
    const packed = Uint32Array.from(swatches, pack);
    const offsets = Int32Array.from(stamp, ([dx, dy]) => dy * W + dx);
    const R = stamp.reduce((m, [dx]) => Math.max(m, dx), 0);
    const { k, tx, ty } = view;
    let drawn = 0;
    for (let i = 0; i < xy.length / 2; i++) {
      const x = xy[2 * i] * k + tx;
      const y = ty - xy[2 * i + 1] * k;
      const X = Math.round(x * dpr);
      const Y = Math.round(y * dpr);
      if (X < -R || Y < -R || X >= W + R || Y >= H + R) continue;
      drawn++;
      const colour = packed[keys[i]];
      if (X >= R && Y >= R && X < W - R && Y < H - R) {
        const at = Y * W + X;
        for (let s = 0; s < offsets.length; s++) buf[at + offsets[s]] = colour;
      } else {
        for (const [dx, dy] of stamp) {
          const u = X + dx;
          const v = Y + dy;
          if (u >= 0 && v >= 0 && u < W && v < H) buf[v * W + u] = colour;
        }
      }
    }
    return drawn;
  }

  // The legend as marks from (x0, 0), CSS px, for the PNG and the SVG alike:
  // ["rect", x, y, w, h, rgb] and ["text", x, y, text, bold]
  function legendMarks(legend, x0) {
    const marks = [["text", x0, 20, legend.title, true]];
    if (legend.kind === "categories") {
      legend.items.forEach((item, j) => {
        const y = 36 + 18 * j;
        marks.push(["rect", x0, y, 12, 12, item.rgb], ["text", x0 + 18, y + 10, item.name, false]);
      });
    } else {
      const h = 160;
      // the scale in 32 bands, its top at the top
      for (let j = 0; j < 32; j++) {
        marks.push(["rect", x0, 36 + (h * (31 - j)) / 32, 14, h / 32 + 0.5, viridis(j / 31)]);
      }
      marks.push(["text", x0 + 20, 44, legend.hiText, false]);
      marks.push(["text", x0 + 20, 36 + h, legend.loText, false]);
    }
    return marks;
  }

  // The legend as the page shows it beside the map: its title, then a swatch and name per
  // category, or the scale from its low to its high value (and grey: no value).
  function legendNodes(legend) {
    const span = (className, text) => {
      const el = document.createElement("span");
      if (className) el.className = className;
      if (text !== undefined) el.textContent = text;
      return el;
    };
    const item = (rgb, name) => {
      const swatch = span("map-swatch");
      swatch.style.background = css(rgb);
      const entry = span("map-legend-item");
      entry.append(swatch, name);
      return entry;
    };
    const parts = [span("map-legend-title", legend.title)];
    if (legend.kind === "categories") {
      for (const it of legend.items) parts.push(item(it.rgb, it.name));
      return parts;
    }
    const bar = document.createElement("canvas");
    bar.className = "map-ramp";
    bar.width = RAMP;
    bar.height = 1;
    const g = bar.getContext("2d");
    ramp.forEach((rgb, j) => {
      g.fillStyle = css(rgb);
      g.fillRect(j, 0, 1, 1);
    });
    parts.push(span("", legend.loText), bar, span("", legend.hiText));
    if (legend.missingText) parts.push(item(MISSING, legend.missingText));
    return parts;
  }

  function drawLegend(g, legend, x0) {
    for (const [shape, x, y, ...rest] of legendMarks(legend, x0)) {
      if (shape === "rect") {
        const [w, h, rgb] = rest;
        g.fillStyle = css(rgb);
        g.fillRect(x, y, w, h);
      } else {
        const [text, bold] = rest;
        g.fillStyle = "#1d2330";
        g.font = `${bold ? "600 " : ""}13px system-ui, sans-serif`;
        g.fillText(text, x, y);
      }
    }
  }

  const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };
  const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ENTITIES[c]);

  // The points inside a side×side view as circles, one group per colour, beside the legend.
  function svg(points, view, side, legendWidth, legend, radius, title) {
    const { xy, keys, swatches } = points;
    const groups = new Map();
    for (let i = 0; i < xy.length / 2; i++) {
      const sx = xy[2 * i] * view.k + view.tx;
      const sy = view.ty - xy[2 * i + 1] * view.k;
      if (sx < 0 || sy < 0 || sx > side || sy > side) continue;
      if (!groups.has(keys[i])) groups.set(keys[i], []);
      const [x, y] = [sx.toFixed(1), sy.toFixed(1)];
      groups.get(keys[i]).push(`<circle cx="${x}" cy="${y}" r="${radius}"/>`);
    }
    const width = side + legendWidth;
    const parts = [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${side}" ` +
        `viewBox="0 0 ${width} ${side}" font-family="system-ui, sans-serif" font-size="13">`,
      `<title>${escape(title)}</title>`,
      `<rect width="100%" height="100%" fill="#fff"/>`,
    ];
    for (const [key, circles] of groups) {
      parts.push(`<g fill="${hex(swatches[key])}">${circles.join("")}</g>`);
    }
    for (const [shape, x, y, ...rest] of legendMarks(legend, side + 16)) {
      if (shape === "rect") {
        const [w, h, rgb] = rest;
        const box = `x="${x}" y="${y.toFixed(1)}" width="${w}" height="${h.toFixed(1)}"`;
        parts.push(`<rect ${box} fill="${hex(rgb)}"/>`);
      } else {
        const [text, bold] = rest;
        const weight = bold ? ' font-weight="600"' : "";
        parts.push(`<text x="${x}" y="${y}"${weight}>${escape(text)}</text>`);
      }
    }
    parts.push("</svg>");
    return parts.join("\n");
  }

  // Where z lies on the map. PCA: the map's own projection, (z − mean)·componentsᵀ. t-SNE
  // places no new point: the mean of the k nearest points by μ (latents: n×D, flat), weighted
  // by 1/distance.
  function place(marker, z, latents, xy) {
    if (marker.kind === "exact") {
      const { mean, components } = marker;
      return components.map((c) => c.reduce((s, w, d) => s + w * (z[d] - mean[d]), 0));
    }
    const D = z.length;
    const n = latents.length / D;
    const k = Math.min(marker.k || 10, n);
    const best = []; // [squared distance, index], ascending, at most k
    for (let i = 0; i < n; i++) {
      let d = 0;
      for (let j = 0; j < D; j++) d += (latents[i * D + j] - z[j]) ** 2;
      if (best.length < k || d < best[best.length - 1][0]) {
        let at = best.length;
        while (at > 0 && best[at - 1][0] > d) at--;
        best.splice(at, 0, [d, i]);
        if (best.length > k) best.pop();
      }
    }
    let sw = 0;
    let x = 0;
    let y = 0;
    for (const [d, i] of best) {
      const w = 1 / (Math.sqrt(d) + 1e-6);
      sw += w;
      x += w * xy[2 * i];
      y += w * xy[2 * i + 1];
    }
    return [x / sw, y / sw];
  }

  window.latentMap = {
    RAMP, css, ramp, colourChoices, colouring, isMissing, formatValue, fitView,
    dot, plot, legendNodes, drawLegend, svg, place,
  };
})();
