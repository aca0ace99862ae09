// The latent map (/map): the encoder means μ of n held-out images laid out in 2-D (GET
// /api/models/{name}/map), drawn on a canvas beside the explorer.
//
// Points are written straight into an ImageData (one 32-bit store per pixel of each dot), so
// 20,000 of them redraw in a few milliseconds and pan and zoom can redraw on every frame. Hover
// looks the pointer up in a grid of the points' screen positions, built once per view, so it
// touches a handful of points, not n. The explorer (static/explore.js) is followed and moved only
// through its events: `latent:z` moves the marker of the current z, a click on a point sends
// `latent:set` with that point's μ. The drawing, the index, the SVG and the marker's arithmetic
// are static/map_draw.js's (window.latentMap). Timings land in window.__mapDraws,
// __mapGrids and __mapHovers for the browser tests and bench/browser_map.py.
"use strict";

(() => {
  const root = document.getElementById("explorer");
  const box = document.getElementById("map");
  if (!root || !box) return;
  const L = window.latentMap;
  const model = root.dataset.model;
  const api = `/api/models/${encodeURIComponent(model)}`;
  const frame = document.getElementById("map-frame");
  const canvas = document.getElementById("map-canvas");
  const overlay = document.getElementById("map-overlay");
  const ctx = canvas.getContext("2d");
  const octx = overlay.getContext("2d");
  const tip = document.getElementById("map-tip");
  const tipImage = tip.querySelector(".map-tip-image");
  const tipRecon = tip.querySelector(".map-tip-recon");
  const tipText = tip.querySelector(".map-tip-text");
  const status = document.getElementById("map-status");
  const colourSelect = document.getElementById("map-colour");
  const methodSelect = document.getElementById("map-method");
  const sizeSelect = document.getElementById("map-n");
  const legendBox = document.getElementById("map-legend");
  const sourceText = document.getElementById("map-source");
  const aboutText = document.getElementById("map-marker-about");
  const exploreLink = document.getElementById("explore-link");
  const draws = (window.__mapDraws = []); // {n, drawn, ms} per redraw
  const grids = (window.__mapGrids = []); // {n, ms}: hover index built, once per view
  // {index, ms, handlerMs, frameMs}: pointer event → tooltip placed (and its handler's share, and
  // the next frame)
  const hovers = (window.__mapHovers = []);

  const DOT = 1.6; // radius of a point, CSS px
  const HOVER = 6; // a point within this many CSS px of the pointer is under it
  const CELL = 8; // hover grid cell, CSS px (≥ HOVER: the 3×3 cells around the pointer suffice)
  const TIP_W = 196; // the tooltip's width, CSS px (style.css: .map-tip)
  const PAD = 14; // CSS px between the data's extent and the canvas edge, at the reset view
  const BACKGROUND = [255, 255, 255];
  const LEGEND_W = 190; // CSS px beside the map in the exports

  let map = null; // the API's answer
  let n = 0;
  let px = null; // data coordinates, Float64Array(n)
  let py = null;
  let sx = null; // screen coordinates (CSS px) at the last draw, Float32Array(n)
  let sy = null;
  let keys = null; // each point's swatch, Uint16Array(n)
  let swatches = []; // [r, g, b] per key
  let legend = null; // as latentMap.colouring makes it
  let view = { k: 1, tx: 0, ty: 0 }; // screen = (x·k + tx, ty − y·k), CSS px
  let grid = null; // hover index of the last draw (latentMap.grid), built when idle after it
  let hovered = -1;
  let marker = null; // [x, y] of the current z on the map
  let z = Array.from(root.querySelectorAll('input[type="range"][data-dim]'))
    .sort((a, b) => Number(a.dataset.dim) - Number(b.dataset.dim))
    .map((s) => Number(s.dataset.value));
  let label = root.dataset.label === "" ? null : Number(root.dataset.label);

  // ---- size: the canvas is square, as wide as its column, at the screen's own pixels
  let cssSize = 0;
  let dpr = 1;
  function fit() {
    const side = Math.max(200, Math.floor(frame.clientWidth));
    const ratio = window.devicePixelRatio || 1;
    if (side === cssSize && ratio === dpr) return false;
    const old = cssSize;
    cssSize = side;
    dpr = ratio;
    for (const c of [canvas, overlay]) {
      c.width = Math.round(side * dpr);
      c.height = Math.round(side * dpr);
      c.style.width = `${side}px`;
      c.style.height = `${side}px`;
    }
    frame.style.height = `${side}px`;
    if (old && map) {
      // keep what is in view, scaled to the new size
      const f = side / old;
      view = { k: view.k * f, tx: view.tx * f, ty: view.ty * f };
    }
    return true;
  }

  function resetView() {
    if (!map) return;
    view = L.fitView(px, py, cssSize, PAD);
  }

  // ---- drawing
  let image = null;
  let stamp = []; // pixel offsets of one dot, device px
  function draw() {
    if (!map) return;
    const t0 = performance.now();
    if (!image || image.width !== canvas.width || image.height !== canvas.height) {
      image = ctx.createImageData(canvas.width, canvas.height);
      stamp = L.dot(DOT * dpr);
    }
    const drawn = L.plot(image, { px, py, keys, swatches, sx, sy }, view, dpr, stamp, BACKGROUND);
    ctx.putImageData(image, 0, 0);
    grid = null;
    indexWhenIdle();
    draws.push({ n, drawn, ms: performance.now() - t0 });
    canvas.dataset.drawn = String(drawn);
    box.dataset.view = JSON.stringify(view);
    drawOverlay();
  }

  let frameAsked = false;
  function redraw() {
    // at most one draw per frame, however many pointer events arrive
    if (frameAsked) return;
    frameAsked = true;
    requestAnimationFrame(() => {
      frameAsked = false;
      draw();
    });
  }

  function drawOverlay() {
    octx.setTransform(dpr, 0, 0, dpr, 0, 0);
    octx.clearRect(0, 0, cssSize, cssSize);
    if (hovered >= 0 && map) {
      octx.beginPath();
      octx.arc(sx[hovered], sy[hovered], DOT + 3, 0, 2 * Math.PI);
      octx.lineWidth = 1.5;
      octx.strokeStyle = "#1d2330";
      octx.stroke();
    }
    if (marker) {
      const [x, y] = toScreen(marker);
      octx.lineWidth = 3;
      octx.strokeStyle = "#fff";
      drawMarker(x, y);
      octx.lineWidth = 1.5;
      octx.strokeStyle = "#d62728";
      drawMarker(x, y);
      overlay.dataset.markerPx = `${x.toFixed(2)},${y.toFixed(2)}`;
    }
  }
  function drawMarker(x, y) {
    octx.beginPath();
    octx.arc(x, y, 7, 0, 2 * Math.PI);
    octx.moveTo(x - 11, y);
    octx.lineTo(x + 11, y);
    octx.moveTo(x, y - 11);
    octx.lineTo(x, y + 11);
    octx.stroke();
  }
  const toScreen = ([x, y]) => [x * view.k + view.tx, view.ty - y * view.k];

  // ---- colour
  function fillColourSelect() {
    const choices = L.colourChoices(map);
    const wanted = colourSelect.value || colourSelect.dataset.initial;
    colourSelect.replaceChildren(
      ...choices.map((c) => {
        const o = document.createElement("option");
        o.value = c.value;
        o.textContent = c.text;
        return o;
      }),
    );
    colourSelect.value = choices.some((c) => c.value === wanted) ? wanted : choices[0].value;
    colourSelect.disabled = false;
  }

  function colourBy(value) {
    ({ keys, swatches, legend } = L.colouring(map, value));
    showLegend();
    draw();
    box.dataset.colour = value;
    setParam("colour", value);
  }

  function showLegend() {
    const title = document.createElement("span");
    title.className = "map-legend-title";
    title.textContent = legend.title;
    const parts = [title];
    if (legend.kind === "categories") {
      for (const item of legend.items) {
        const entry = document.createElement("span");
        entry.className = "map-legend-item";
        const swatch = document.createElement("span");
        swatch.className = "map-swatch";
        swatch.style.background = L.css(item.rgb);
        entry.append(swatch, item.name);
        parts.push(entry);
      }
    } else {
      const bar = document.createElement("canvas");
      bar.className = "map-ramp";
      bar.width = L.RAMP;
      bar.height = 1;
      const g = bar.getContext("2d");
      L.ramp.forEach((rgb, j) => {
        g.fillStyle = L.css(rgb);
        g.fillRect(j, 0, 1, 1);
      });
      const lo = document.createElement("span");
      lo.textContent = legend.loText;
      const hi = document.createElement("span");
      hi.textContent = legend.hiText;
      parts.push(lo, bar, hi);
      if (legend.missingText) {
        const none = document.createElement("span");
        none.className = "map-legend-item";
        const swatch = document.createElement("span");
        swatch.className = "map-swatch";
        swatch.style.background = "rgb(200,200,200)";
        none.append(swatch, legend.missingText);
        parts.push(none);
      }
    }
    legendBox.replaceChildren(...parts);
    legendBox.dataset.kind = legend.kind;
  }

  // ---- the URL holds the map's state beside the explorer's z
  function setParam(key, value) {
    const params = new URLSearchParams(root.dataset.urlParams);
    params.set(key, value);
    root.dataset.urlParams = params.toString(); // explore.js writes these with z
    const here = new URLSearchParams(location.search);
    here.set(key, value);
    history.replaceState(null, "", `${location.pathname}?${here}`);
  }

  // ---- hover: the grid index of the points' screen positions
  function index() {
    if (grid) return;
    const t0 = performance.now();
    grid = L.grid(sx, sy, cssSize, CELL);
    grids.push({ n, ms: performance.now() - t0 });
  }
  // built when the page is idle after a draw (not on every frame of a pan), so the first hover
  // of a view rarely waits for it
  let idle = null;
  const whenIdle = window.requestIdleCallback || ((f) => setTimeout(f, 50));
  const cancelIdle = window.cancelIdleCallback || clearTimeout;
  function indexWhenIdle() {
    if (idle !== null) cancelIdle(idle);
    idle = whenIdle(() => {
      idle = null;
      index();
    });
  }

  function nearest(x, y) {
    index();
    return L.nearest(grid, x, y, HOVER);
  }

  const zText = (row) => row.map((v) => v.toFixed(2)).join(",");
  function imageUrl(i) {
    if (map.image_url) return map.image_url.replace("{index}", String(map.indices[i]));
    return `${api}/decode.png?z=${zText(map.prior_z[i])}`;
  }
  function reconUrl(i) {
    const cvae = map.labels ? `&label=${map.labels[i]}` : "";
    return `${api}/decode.png?z=${zText(map.latents[i])}${cvae}`;
  }
  function describe(i) {
    const what = map.source.kind === "prior" ? "prior draw" : map.source.dataset || "image";
    const parts = [`${what} ${map.indices[i].toLocaleString("en")}`];
    for (const c of map.colour_by) {
      const v = c.values[i];
      const shown = v === null || (c.names && v < 0) ? "—" : c.names ? c.names[v] : L.formatValue(v);
      parts.push(`${c.name}: ${shown}`);
    }
    return parts.join(" · ");
  }

  function hover(ev) {
    const start = performance.now();
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const y = ev.clientY - r.top;
    const i = nearest(x, y);
    if (i !== hovered) {
      hovered = i;
      if (i < 0) {
        tip.hidden = true;
        delete tip.dataset.index;
      } else {
        tipImage.src = imageUrl(i);
        tipRecon.src = reconUrl(i);
        tipText.textContent = describe(i);
        tip.dataset.index = String(i);
        tip.hidden = false;
        // beside the point, inside the frame, without reading the layout back (that would
        // force one on every hover): the tip's width is fixed, and it hangs down from a point
        // in the upper half of the frame and stands up from one in the lower half
        const left = sx[i] + 12 + TIP_W > cssSize ? sx[i] - 12 - TIP_W : sx[i] + 12;
        tip.style.left = `${Math.max(0, left)}px`;
        const upper = sy[i] < cssSize / 2;
        tip.style.top = upper ? `${Math.max(0, sy[i] - 24)}px` : "";
        tip.style.bottom = upper ? "" : `${Math.max(0, cssSize - sy[i] - 24)}px`;
      }
      drawOverlay();
    }
    // placed: the tooltip's content and position set (its layout read); frame: the next frame
    const now = performance.now();
    const entry = { index: i, ms: now - ev.timeStamp, handlerMs: now - start, frameMs: null };
    hovers.push(entry);
    requestAnimationFrame(() => (entry.frameMs = performance.now() - ev.timeStamp));
  }

  function leave() {
    hovered = -1;
    tip.hidden = true;
    delete tip.dataset.index;
    drawOverlay();
  }

  // ---- pan (drag), click (a point into the sliders), zoom (wheel about the pointer)
  let drag = null;
  overlay.addEventListener("pointerdown", (ev) => {
    if (!map || ev.button !== 0) return;
    overlay.setPointerCapture(ev.pointerId);
    drag = { x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false };
  });
  overlay.addEventListener("pointermove", (ev) => {
    if (!map) return;
    if (drag) {
      const dx = ev.clientX - drag.x;
      const dy = ev.clientY - drag.y;
      if (!drag.moved && dx * dx + dy * dy < 9) return; // a click's jitter is not a pan
      drag.moved = true;
      view.tx = drag.tx + dx;
      view.ty = drag.ty + dy;
      if (!tip.hidden) leave();
      redraw();
      return;
    }
    hover(ev);
  });
  overlay.addEventListener("pointerup", (ev) => {
    const was = drag;
    drag = null;
    if (!was || was.moved || !map) return;
    const r = canvas.getBoundingClientRect();
    const i = nearest(ev.clientX - r.left, ev.clientY - r.top);
    if (i >= 0) choose(i);
  });
  overlay.addEventListener("pointercancel", () => (drag = null));
  overlay.addEventListener("pointerleave", () => {
    if (!drag) leave();
  });
  overlay.addEventListener(
    "wheel",
    (ev) => {
      if (!map) return;
      ev.preventDefault();
      const r = canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left;
      const my = ev.clientY - r.top;
      const lines = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? cssSize : 1;
      const f = Math.exp(-ev.deltaY * lines * 0.0015);
      // the data point under the pointer stays under it
      view = { k: view.k * f, tx: mx - (mx - view.tx) * f, ty: my - (my - view.ty) * f };
      leave();
      redraw();
    },
    { passive: false },
  );
  document.getElementById("map-reset").addEventListener("click", () => {
    resetView();
    draw();
  });

  function choose(i) {
    const detail = { z: map.latents[i].slice() };
    if (map.labels) detail.label = map.labels[i];
    root.dispatchEvent(new CustomEvent("latent:set", { detail }));
    box.dataset.chosen = String(i);
  }

  // ---- the marker of the current z
  function place() {
    if (!map) return;
    marker = L.place(map.marker, z, map.latents, px, py);
    overlay.dataset.marker = marker.map((v) => v.toFixed(6)).join(",");
    drawOverlay();
  }

  root.addEventListener("latent:z", (ev) => {
    z = ev.detail.z;
    label = ev.detail.label;
    place();
    if (exploreLink) {
      const cvae = label === null || label === undefined ? "" : `&label=${label}`;
      exploreLink.href = `/?model=${encodeURIComponent(model)}&z=${zText(z)}${cvae}`;
    }
  });

  // ---- export: the canvas as drawn with its legend (PNG), the points in view as circles (SVG)
  function download(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }
  const fileName = (ext) => `${model}-map-${map.method}-${colourSelect.value}.${ext}`;

  document.getElementById("map-png").addEventListener("click", () => {
    const out = document.createElement("canvas");
    out.width = Math.round((cssSize + LEGEND_W) * dpr);
    out.height = canvas.height;
    const g = out.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, out.width, out.height);
    g.drawImage(canvas, 0, 0);
    g.drawImage(overlay, 0, 0);
    g.scale(dpr, dpr);
    L.drawLegend(g, legend, cssSize + 16);
    out.toBlob((blob) => download(blob, fileName("png")), "image/png");
  });

  document.getElementById("map-svg").addEventListener("click", () => {
    const title = `${model}: latent map (${map.method}, ${n} points), coloured by ${legend.title}`;
    const text = L.svg({ keys, swatches, sx, sy }, cssSize, LEGEND_W, legend, DOT, title);
    download(new Blob([text], { type: "image/svg+xml" }), fileName("svg"));
  });

  // ---- loading: t-SNE answers 202 while it computes; poll as Retry-After says
  let asked = 0;
  let poll = null;
  async function load() {
    const token = ++asked;
    clearTimeout(poll);
    const method = methodSelect.value;
    const size = sizeSelect.value;
    box.dataset.state = "loading";
    const points = Number(size).toLocaleString("en");
    status.textContent = `loading the ${method === "tsne" ? "t-SNE" : "PCA"} map of ${points} points…`;
    let resp, body;
    try {
      const url = new URL(box.dataset.api, location.href); // may carry ?data=NAME
      url.searchParams.set("n", size);
      url.searchParams.set("method", method);
      resp = await fetch(url);
      body = await resp.json().catch(() => ({ detail: resp.statusText }));
    } catch (err) {
      body = { detail: err.message };
    }
    if (token !== asked) return; // another layout or size was chosen meanwhile
    if (resp && resp.status === 202) {
      const wait = Number(resp.headers.get("Retry-After")) || body.retry_after || 5;
      box.dataset.state = "computing";
      status.textContent =
        `computing… ${body.detail} (asking again in ${wait} s; the explorer works meanwhile)`;
      poll = setTimeout(load, wait * 1000);
      return;
    }
    if (!resp || !resp.ok) {
      box.dataset.state = "error";
      status.textContent = `no map: ${body.detail}`;
      return;
    }
    show(body);
  }

  function show(body) {
    map = body;
    n = map.points.length;
    px = Float64Array.from(map.points, (p) => p[0]);
    py = Float64Array.from(map.points, (p) => p[1]);
    sx = new Float32Array(n);
    sy = new Float32Array(n);
    hovered = -1;
    tip.hidden = true;
    fit();
    resetView();
    fillColourSelect();
    colourBy(colourSelect.value); // draws
    place();
    const ratio = map.method === "pca" ? map.settings.explained_variance_ratio : null;
    const held = ratio ? ratio.map((v) => `${(100 * v).toFixed(1)}%`).join(" and ") : "";
    const method = map.method === "tsne" ? "t-SNE" : "PCA";
    status.textContent =
      `${method} of ${n.toLocaleString("en")} encoder means` +
      (held ? ` · the two axes hold ${held} of μ's variance` : "");
    sourceText.textContent = map.source.description;
    aboutText.textContent = map.marker.kind === "exact"
      ? "The marker is exact: z projected by the same PCA as the points."
      : map.marker.about;
    for (const id of ["map-png", "map-svg"]) document.getElementById(id).disabled = false;
    box.dataset.state = "done";
  }

  colourSelect.addEventListener("change", () => colourBy(colourSelect.value));
  for (const [select, key] of [[methodSelect, "method"], [sizeSelect, "n"]]) {
    select.addEventListener("change", () => {
      setParam(key, select.value);
      load();
    });
  }
  new ResizeObserver(() => {
    if (fit() && map) draw();
  }).observe(frame);
  matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener("change", () => {
    if (fit() && map) draw();
  });

  fit();
  load();
})();
