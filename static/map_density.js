// The latent map's density view (window.latentMapDensity.image): where points overlap, how
// many fall in each cell of the screen, on a log scale, coloured by the cell's most common
// category (a categorical colouring) or its mean on the continuous scale (an ordered one).
// One pass over n on typed arrays per view; static/map_gl.js stretches the image over a layer.
"use strict";

(() => {
  // RGBA bytes of cols×rows cells of `cell` CSS px, row 0 at the bottom (as a texture's first
  // row is drawn), for the view v over a canvas of `height` CSS px. keys/swatches as
  // latentMap.colouring makes them; `categorical`: the dominant key, else the mean key.
  function image(xy, keys, swatches, categorical, v, cols, rows, cell, height, background) {
    const n = xy.length / 2;
    const cells = cols * rows;
    const counts = new Uint32Array(cells);
    const K = swatches.length;
    // per-cell counts of each key where that stays small, else the mean key
    const perKey = categorical && cells * K <= 16_000_000 ? new Uint32Array(cells * K) : null;
    const sums = perKey ? null : new Float64Array(cells);
    const { k, tx, ty } = v;
    for (let i = 0; i < n; i++) {
      const cx = Math.floor((xy[2 * i] * k + tx) / cell);
      const cy = Math.floor((height - (ty - xy[2 * i + 1] * k)) / cell);
      if (cx < 0 || cy < 0 || cx >= cols || cy >= rows) continue;
      const c = cy * cols + cx;
      counts[c]++;
      if (perKey) perKey[c * K + keys[i]]++;
      else sums[c] += keys[i];
    }
    let top = 1;
    for (let c = 0; c < cells; c++) if (counts[c] > top) top = counts[c];
    const scale = 1 / Math.log1p(top);
    const out = new Uint8Array(4 * cells);
    const [br, bg, bb] = background;
    for (let c = 0; c < cells; c++) {
      const m = counts[c];
      let rgb = background;
      let t = 0;
      if (m) {
        let key = 0;
        if (perKey) {
          for (let j = 1; j < K; j++) if (perKey[c * K + j] > perKey[c * K + key]) key = j;
        } else {
          key = Math.min(K - 1, Math.round(sums[c] / m));
        }
        rgb = swatches[key];
        // one point is still seen (a quarter of the colour), the densest cell is the full colour
        t = 0.25 + 0.75 * Math.log1p(m) * scale;
      }
      out[4 * c] = br + (rgb[0] - br) * t;
      out[4 * c + 1] = bg + (rgb[1] - bg) * t;
      out[4 * c + 2] = bb + (rgb[2] - bb) * t;
      out[4 * c + 3] = 255;
    }
    return { image: out, top };
  }

  window.latentMapDensity = { image };
})();
