// The latent map (/map): the encoder means μ of n images laid out in 2-D (GET
// /api/models/{name}/map.bin, fetched by static/map_load.js), drawn beside the explorer.
//
// The points are drawn on the GPU (static/map_gl.js: a layer drawn once per view, moved on each
// frame of a pan or zoom, drawn again for the new view chunk by chunk), or into a 2-D canvas's
// pixels where WebGL2 is not to be had (latentMap.plot). Hover asks a grid index of the points in
// data coordinates, built once per map (static/map_index.js), so no view change rebuilds it; the
// density view counts the points per screen cell (static/map_density.js). A
// lasso or a box selects points into slot A or B (static/map_tools.js); each change is the
// `map:selection` event on #explorer. The explorer (static/explore.js) is followed and moved only
// through its events: `latent:z` moves the marker of the current z, a click on a point sends
// `latent:set` with that point's μ. Timings land in window.__mapDraws (each complete drawing of
// the points), __mapFrames (every frame), __mapGrids (the index), __mapHovers (pointer →
// tooltip) and __mapLoad (bytes, decode, first paint) for the browser tests and
// bench/browser_map.py. window.latentMapView is the page's handle on the map (see the bottom).
"use strict";

(() => {
  const root = document.getElementById("explorer");
  const box = document.getElementById("map");
  if (!root || !box) return;
  const L = window.latentMap;
  const index = window.latentMapIndex;
  const model = root.dataset.model;
  const api = `/api/models/${encodeURIComponent(model)}`;
  const $ = (id) => document.getElementById(id);
  const frame = $("map-frame");
  const canvas = $("map-canvas");
  const overlay = $("map-overlay");
  const octx = overlay.getContext("2d");
  const tip = $("map-tip");
  const tipImage = tip.querySelector(".map-tip-image");
  const tipRecon = tip.querySelector(".map-tip-recon");
  const tipText = tip.querySelector(".map-tip-text");
  const status = $("map-status");
  const colourSelect = $("map-colour");
  const methodSelect = $("map-method");
  const sizeSelect = $("map-n");
  const legendBox = $("map-legend");
  const densityNote = $("map-density-note");
  const sourceText = $("map-source");
  const aboutText = $("map-marker-about");
  const svgButton = $("map-svg");
  const exploreLink = $("explore-link");
  const draws = (window.__mapDraws = []); // {n, drawn, ms, what}: each complete drawing
  // every frame drawn: {t (its start), gap (since the last, where that one asked for this: null
  // after a pause), ms (its work on this thread), what ("moved": the layer moved to the view;
  // "chunk": and some points drawn into the next one; "points": every point; "density"; "2d"),
  // drew (points drawn), complete (ms the layer took), inputMs (from the pan or zoom event that
  // moved the view to this frame drawn)}
  const frames = (window.__mapFrames = []);
  const grids = (window.__mapGrids = []); // {n, ms}: the hover index, once per map
  // {index, ms, handlerMs, frameMs}: pointer event → tooltip placed (and its handler's share,
  // and the next frame)
  const hovers = (window.__mapHovers = []);
  // {format, bytes, fetchMs, bytesAt, decodeMs, firstPaintMs (from bytesAt to every point drawn)}
  const load = (window.__mapLoad = {});

  // radius of a point, CSS px: smaller where there are many (a point's pixels are most of its
  // cost to SwiftShader, and a dense map reads better with them small)
  const dotFor = (count) => (count > 100_000 ? 1.0 : 1.6);
  let DOT = dotFor(0);
  const HOVER = 6; // a point within this many CSS px of the pointer is under it
  const TIP_W = 196; // the tooltip's width, CSS px (style.css: .map-tip)
  const PAD = 14; // CSS px between the data's extent and the canvas edge, at the reset view
  const BACKGROUND = [255, 255, 255];
  const LEGEND_W = 190; // CSS px beside the map in the exports
  const SVG_MAX = 20_000; // circles past this make a file editors choke on: PNG instead
  const SLOT_COLOURS = { A: "#1d4ed8", B: "#c2410c" };
  const LAYOUT_NAMES = { pca: "PCA", tsne: "t-SNE", umap: "UMAP", loaded: "loaded layout" };

  let map = null; // the header, with the arrays the page reads (see normalise)
  let n = 0;
  let xy = null; // Float32Array(2n): x, y of each point, data coordinates
  let keys = null; // each point's swatch, Uint16Array(n)
  let swatches = []; // [r, g, b] per key
  let legend = null; // as latentMap.colouring makes it
  let view = { k: 1, tx: 0, ty: 0 }; // screen = (x·k + tx, ty − y·k), CSS px
  let grid = null; // the hover index (latentMapIndex.grid), in data coordinates
  let hovered = -1;
  let marker = null; // [x, y] of the current z on the map
  let density = false;
  let z = Array.from(root.querySelectorAll('input[type="range"][data-dim]'))
    .sort((a, b) => Number(a.dataset.dim) - Number(b.dataset.dim))
    .map((s) => Number(s.dataset.value));
  let label = root.dataset.label === "" ? null : Number(root.dataset.label);

  // ---- the renderer: WebGL2 where there is one, else the 2-D canvas
  let inputAt = null; // the pan or zoom event whose view no frame has drawn yet
  let shownView = null; // the view the canvas shows exactly
  let painted = null; // resolves `ready`
  let ready = new Promise((resolve) => (painted = resolve));
  let afterPaint = []; // callbacks for the next exact drawing
  const gl = window.latentMapGL && window.latentMapGL.create(canvas, {
    background: BACKGROUND,
    onFrame: (record, exact) => {
      if (inputAt !== null) {
        // the first frame drawn since a pan or zoom moved the view: from that event to here
        record.inputMs = performance.now() - inputAt;
        inputAt = null;
      }
      frames.push(record);
      if (frames.length > 5_000) frames.splice(0, 1_000);
      if (record.complete !== undefined) {
        const v = JSON.parse(JSON.stringify(view));
        draws.push({ n, drawn: countInView(v), ms: record.complete, what: record.what });
        canvas.dataset.draws = String(draws.length);
      }
      if (exact) painted_(view);
    },
  });
  const ctx = gl ? null : canvas.getContext("2d");
  box.dataset.renderer = gl ? "webgl2" : "2d";
  if (gl) box.dataset.gpu = gl.info().renderer;

  function painted_(v) {
    shownView = { ...v };
    canvas.dataset.drawn = String(countInView(v));
    box.dataset.shown = JSON.stringify(v);
    if (load.bytesAt && load.firstPaintMs === undefined) {
      load.firstPaintMs = performance.now() - load.bytesAt;
    }
    painted();
    const waiting = afterPaint;
    afterPaint = [];
    waiting.forEach((f) => f());
  }
  // points whose dot touches the canvas (as the 2-D path counts them)
  function countInView(v) {
    const lo = -DOT;
    const hi = cssSize + DOT;
    let c = 0;
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i] * v.k + v.tx;
      const y = v.ty - xy[2 * i + 1] * v.k;
      if (x >= lo && y >= lo && x < hi && y < hi) c++;
    }
    return c;
  }

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
    if (gl) gl.setSize(side, side, dpr, DOT);
    if (old && map) {
      // keep what is in view, scaled to the new size
      const f = side / old;
      view = { k: view.k * f, tx: view.tx * f, ty: view.ty * f };
    }
    return true;
  }

  function resetView() {
    if (!map) return;
    view = L.fitView(xy, cssSize, PAD);
  }

  // ---- drawing: the view asked of the renderer (GL: its own frames; 2-D: one draw a frame)
  let image = null;
  let stamp = [];
  function draw() {
    if (!map) return;
    box.dataset.view = JSON.stringify(view);
    drawOverlay();
    if (gl) {
      gl.setView(view);
      return;
    }
    redraw2d();
  }
  let frameAsked = false;
  function redraw2d() {
    if (frameAsked) return;
    frameAsked = true;
    requestAnimationFrame(() => {
      frameAsked = false;
      const t0 = performance.now();
      if (!image || image.width !== canvas.width || image.height !== canvas.height) {
        image = ctx.createImageData(canvas.width, canvas.height);
        stamp = L.dot(DOT * dpr);
      }
      const [k2, s2] = dimmed();
      const drawn = L.plot(image, { xy, keys: k2, swatches: s2 }, view, dpr, stamp, BACKGROUND);
      ctx.putImageData(image, 0, 0);
      const ms = performance.now() - t0;
      draws.push({ n, drawn, ms, what: "2d" });
      canvas.dataset.draws = String(draws.length);
      frames.push({ t: t0, gap: null, ms, what: "2d", drew: n });
      painted_(view);
    });
  }
  // the 2-D path's selection: points outside it take a pale copy of their swatch
  function dimmed() {
    const marks = tools.marks();
    if (!marks) return [keys, swatches];
    const K = swatches.length;
    const pale = swatches.map((rgb) => rgb.map((v) => Math.round(v + 0.82 * (255 - v))));
    const k2 = Uint16Array.from(keys, (key, i) => (marks[i] ? key : key + K));
    return [k2, [...swatches, ...pale]];
  }
  // what the canvas shows is no longer what is asked (colours, selection, density): until it
  // is drawn again, it shows no view exactly
  function stale() {
    shownView = null;
    delete box.dataset.shown;
  }
  function whenShown() {
    return new Promise((resolve) => {
      if (shownView && JSON.stringify(shownView) === JSON.stringify(view)) resolve();
      else afterPaint.push(resolve);
    });
  }

  function drawOverlay() {
    octx.setTransform(dpr, 0, 0, dpr, 0, 0);
    octx.clearRect(0, 0, cssSize, cssSize);
    if (!map) return;
    tools.drawOn(octx, SLOT_COLOURS);
    if (hovered >= 0) {
      const [x, y] = toScreen([xy[2 * hovered], xy[2 * hovered + 1]]);
      octx.beginPath();
      octx.arc(x, y, DOT + 3, 0, 2 * Math.PI);
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
  const toData = ([sx, sy]) => [(sx - view.tx) / view.k, (view.ty - sy) / view.k];

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
    if (!L.colourChoices(map).length) {
      // a map with nothing to colour by (no columns, no μ): one colour
      keys = new Uint16Array(n);
      swatches = [[78, 121, 167]];
      legend = { kind: "categories", title: "points", items: [] };
    } else {
      ({ keys, swatches, legend } = L.colouring(map, value));
    }
    stale();
    if (gl) gl.setColours(keys, swatches);
    setDensity(density);
    showLegend();
    draw();
    box.dataset.colour = value;
    setParam("colour", value);
  }

  function setDensity(on) {
    density = on;
    $("map-density").setAttribute("aria-pressed", String(on));
    box.dataset.density = String(on);
    if (!gl) return;
    stale();
    if (!on) {
      gl.setDensity(null);
      densityNote.textContent = "";
      return;
    }
    const categorical = legend.kind === "categories";
    gl.setDensity((v, cols, rows, cell) => {
      const out = window.latentMapDensity.image(
        xy, keys, swatches, categorical, v, cols, rows, cell, cssSize, BACKGROUND,
      );
      densityNote.textContent =
        `density: points per ${cell.toFixed(1)} px cell on a log scale, the palest one point, ` +
        `the deepest ${out.top.toLocaleString("en")}; each cell in its ` +
        (categorical ? "most common category's colour" : "mean's colour on the scale");
      return out.image;
    });
  }

  function showLegend() {
    legendBox.replaceChildren(...L.legendNodes(legend));
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

  // ---- hover: the grid index in data coordinates
  function nearest(cx, cy) {
    const [x, y] = toData([cx, cy]);
    return index.nearest(grid, x, y, HOVER / view.k);
  }

  const dataParam = new URL(box.dataset.api, location.href).searchParams.get("data");
  const D = Number(root.dataset.latentDim);
  const zText = (row) => Array.from(row, (v) => v.toFixed(2)).join(",");
  const rowOf = (a, i) => a.subarray(i * D, (i + 1) * D);
  function imageUrl(i) {
    if (map.image_url) return map.image_url.replace("{index}", String(map.indices[i]));
    return `${api}/decode.png?z=${zText(rowOf(map.prior_z, i))}`;
  }
  // a point's μ: in the map up to 20,000 points, else encoded again by the server on demand
  const asked = new Map();
  function muOf(i) {
    if (map.latents) return Promise.resolve({ mu: Array.from(rowOf(map.latents, i)) });
    const image = map.indices[i];
    if (!asked.has(image)) {
      const url = new URL(`${api}/encode`, location.href);
      url.searchParams.set("index", String(image));
      if (dataParam) url.searchParams.set("data", dataParam);
      asked.set(image, fetch(url).then((r) => (r.ok ? r.json() : Promise.reject(r.statusText))));
    }
    return asked.get(image);
  }
  function reconUrl(i) {
    const cvae = map.labels ? `&label=${map.labels[i]}` : "";
    return `${api}/decode.png?z=${zText(rowOf(map.latents, i))}${cvae}`;
  }
  function describe(i) {
    const what = map.source.kind === "prior" ? "prior draw" : map.source.dataset || "image";
    const parts = [`${what} ${map.indices[i].toLocaleString("en")}`];
    for (const c of map.colour_by) {
      const v = c.values[i];
      const shown = L.isMissing(c, v) ? "—" : c.names ? c.names[v] : L.formatValue(v);
      parts.push(`${c.name}: ${shown}`);
    }
    return parts.join(" · ");
  }

  let reconTimer = null;
  function hover(ev) {
    const start = performance.now();
    const r = canvas.getBoundingClientRect();
    const i = nearest(ev.clientX - r.left, ev.clientY - r.top);
    if (i !== hovered) {
      hovered = i;
      if (i < 0) {
        tip.hidden = true;
        delete tip.dataset.index;
      } else {
        tipImage.src = imageUrl(i);
        clearTimeout(reconTimer);
        if (map.latents) {
          tipRecon.src = reconUrl(i);
        } else {
          // the server encodes the image for its μ (and draws the reconstruction with it):
          // asked once the pointer rests, not for every point it passes over
          tipRecon.removeAttribute("src");
          reconTimer = setTimeout(() => {
            muOf(i).then((body) => {
              if (hovered === i) tipRecon.src = body.reconstruction_png;
            }, () => {});
          }, 120);
        }
        tipText.textContent = describe(i);
        tip.dataset.index = String(i);
        tip.hidden = false;
        // beside the point, inside the frame, without reading the layout back (that would
        // force one on every hover): the tip's width is fixed, and it hangs down from a point
        // in the upper half of the frame and stands up from one in the lower half
        const [sx, sy] = toScreen([xy[2 * i], xy[2 * i + 1]]);
        const left = sx + 12 + TIP_W > cssSize ? sx - 12 - TIP_W : sx + 12;
        tip.style.left = `${Math.max(0, left)}px`;
        const upper = sy < cssSize / 2;
        tip.style.top = upper ? `${Math.max(0, sy - 24)}px` : "";
        tip.style.bottom = upper ? "" : `${Math.max(0, cssSize - sy - 24)}px`;
      }
      drawOverlay();
    }
    // placed: the tooltip's content and position set; frame: the next frame
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

  // ---- the selection tools (static/map_tools.js): lasso, box, slots A and B
  const tools = window.latentMapTools.create({
    root,
    toData,
    toScreen: (x, y) => toScreen([x, y]),
    points: () => ({ xy, indices: map.indices, n }),
    changed: () => {
      stale();
      if (gl) gl.setMarks(tools.marks());
      else if (map) redraw2d();
      drawOverlay();
    },
    drawOverlay,
  });

  // ---- pan (drag), click (a point into the sliders), zoom (wheel about the pointer); with the
  // lasso or box tool a drag draws the selection instead
  let drag = null;
  const local = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  };
  overlay.addEventListener("pointerdown", (ev) => {
    if (!map || ev.button !== 0) return;
    overlay.setPointerCapture(ev.pointerId);
    if (tools.tool() !== "pan") {
      leave();
      tools.start(local(ev));
      return;
    }
    drag = { x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false };
  });
  overlay.addEventListener("pointermove", (ev) => {
    if (!map) return;
    if (tools.drawing()) {
      tools.extend(local(ev));
      return;
    }
    if (drag) {
      const dx = ev.clientX - drag.x;
      const dy = ev.clientY - drag.y;
      if (!drag.moved && dx * dx + dy * dy < 9) return; // a click's jitter is not a pan
      drag.moved = true;
      view.tx = drag.tx + dx;
      view.ty = drag.ty + dy;
      if (inputAt === null) inputAt = ev.timeStamp;
      if (!tip.hidden) leave();
      draw();
      return;
    }
    if (!rawHover) hover(ev);
  });
  // Chromium hands pointermove to the page once a frame, at the frame's start, so a hover waits
  // up to a frame for its event; pointerrawupdate comes as the pointer moves (a secure context:
  // https or localhost), and the tooltip is placed before the frame that shows it
  const rawHover = "onpointerrawupdate" in overlay;
  if (rawHover) {
    overlay.addEventListener("pointerrawupdate", (ev) => {
      if (map && !drag && !tools.drawing()) hover(ev);
    });
  }
  overlay.addEventListener("pointerup", (ev) => {
    if (tools.drawing()) {
      tools.finish(local(ev));
      return;
    }
    const was = drag;
    drag = null;
    if (!was || was.moved || !map) return;
    const [x, y] = local(ev);
    const i = nearest(x, y);
    if (i >= 0) choose(i);
  });
  overlay.addEventListener("pointercancel", () => {
    drag = null;
    tools.cancel();
  });
  overlay.addEventListener("pointerleave", () => {
    if (!drag && !tools.drawing()) leave();
  });
  overlay.addEventListener(
    "wheel",
    (ev) => {
      if (!map) return;
      ev.preventDefault();
      const [mx, my] = local(ev);
      const lines = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? cssSize : 1;
      const f = Math.exp(-ev.deltaY * lines * 0.0015);
      // the data point under the pointer stays under it
      view = { k: view.k * f, tx: mx - (mx - view.tx) * f, ty: my - (my - view.ty) * f };
      if (inputAt === null) inputAt = ev.timeStamp;
      leave();
      draw();
    },
    { passive: false },
  );
  $("map-reset").addEventListener("click", () => {
    resetView();
    draw();
  });
  $("map-density").addEventListener("click", () => {
    setDensity(!density);
    draw();
  });

  async function choose(i) {
    box.dataset.chosen = String(i);
    let body;
    try {
      body = await muOf(i);
    } catch (err) {
      status.textContent = `could not encode image ${map.indices[i]}: ${err}`;
      return;
    }
    const detail = { z: body.mu.slice() };
    if (map.labels) detail.label = map.labels[i];
    root.dispatchEvent(new CustomEvent("latent:set", { detail }));
  }

  // ---- the marker of the current z: PCA's projection, else the server's place for z (asked
  // once the sliders rest a moment), else the nearest points' positions
  let placeTimer = null;
  let placing = 0;
  function place() {
    if (!map) return;
    if (map.marker.kind === "exact" || (!map.marker.place && map.latents)) {
      setMarker(L.place(map.marker, z, map.latents, xy));
      return;
    }
    if (!map.marker.place) return;
    clearTimeout(placeTimer);
    placeTimer = setTimeout(async () => {
      const token = ++placing;
      const url = new URL(map.marker.place, location.href);
      const zAsked = z.map((v) => v.toFixed(4)).join(",");
      url.searchParams.set("z", zAsked);
      if (label !== null && label !== undefined) url.searchParams.set("label", String(label));
      try {
        const resp = await fetch(url);
        const body = await resp.json();
        if (token !== placing || !resp.ok) return;
        setMarker([body.x, body.y]);
        aboutText.textContent = body.about;
        overlay.dataset.markerHow = body.how;
        overlay.dataset.markerZ = zAsked;
      } catch {
        // the marker stays where it was
      }
    }, 150);
  }
  function setMarker(xyMarker) {
    marker = xyMarker;
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

  $("map-png").addEventListener("click", async () => {
    await whenShown(); // the points drawn for this view, not the last view's moved
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

  svgButton.addEventListener("click", () => {
    const title = `${model}: latent map (${map.method}, ${n} points), coloured by ${legend.title}`;
    const text = L.svg({ xy, keys, swatches }, view, cssSize, LEGEND_W, legend, DOT, title);
    download(new Blob([text], { type: "image/svg+xml" }), fileName("svg"));
  });

  // ---- loading (static/map_load.js): t-SNE and a data set's encoding answer 202 while they
  // compute: ask again as Retry-After says
  let loads = 0;
  let poll = null;
  async function fetchMap() {
    const token = ++loads;
    clearTimeout(poll);
    const method = methodSelect.value;
    const size = sizeSelect.value;
    box.dataset.state = "loading";
    const points = Number(size).toLocaleString("en");
    status.textContent = `loading the ${LAYOUT_NAMES[method] || method} map of ${points} points…`;
    const answer = await window.latentMapLoad.fetchMap(
      box.dataset.binary, box.dataset.api, { n: size, method }, D, load,
    );
    if (token !== loads) return; // another layout or size was chosen meanwhile
    if (answer.status === 202) {
      box.dataset.state = "computing";
      status.textContent = `computing… ${answer.detail} ` +
        `(asking again in ${answer.wait} s; the explorer works meanwhile)`;
      poll = setTimeout(fetchMap, answer.wait * 1000);
      return;
    }
    if (answer.status !== 200) {
      box.dataset.state = "error";
      status.textContent = `no map: ${answer.detail}`;
      return;
    }
    show(answer.map);
  }

  function show(body) {
    map = body;
    map.n = n = map.indices.length;
    xy = map.xy;
    hovered = -1;
    tip.hidden = true;
    fit();
    resetView();
    DOT = dotFor(n);
    image = null; // the 2-D path's stamp, for the new radius
    if (gl) gl.setSize(cssSize, cssSize, dpr, DOT);
    const t0 = performance.now();
    grid = index.grid(xy);
    grids.push({ n, ms: performance.now() - t0 });
    if (gl) gl.setPoints(xy, grid);
    tools.reset();
    fillColourSelect();
    colourBy(colourSelect.value); // draws
    place();
    const ratio = map.method === "pca" ? map.settings.explained_variance_ratio : null;
    const held = ratio ? ratio.map((v) => `${(100 * v).toFixed(1)}%`).join(" and ") : "";
    const method = LAYOUT_NAMES[map.method] || map.method;
    status.textContent =
      `${method} of ${n.toLocaleString("en")} encoder means` +
      (held ? ` · the two axes hold ${held} of μ's variance` : "") +
      (map.latents ? "" : " · a point's μ is encoded again when it is clicked");
    sourceText.textContent = map.source.description;
    aboutText.textContent = map.marker.kind === "exact"
      ? "The marker is exact: z projected by the same PCA as the points."
      : map.marker.about || "";
    $("map-png").disabled = false;
    const densityButton = $("map-density");
    densityButton.disabled = !gl;
    if (!gl) densityButton.title = "the density view is drawn with WebGL2, which this browser lacks";
    svgButton.disabled = n > SVG_MAX;
    svgButton.title = n > SVG_MAX
      ? `an SVG of more than ${SVG_MAX.toLocaleString("en")} circles is too large for an ` +
        "editor to open: download the PNG"
      : "the points in view as circles";
    box.dataset.state = "done";
  }

  colourSelect.addEventListener("change", () => colourBy(colourSelect.value));
  const splitSelect = $("map-split"); // a set with a test split: its test images, or all
  if (splitSelect) {
    splitSelect.addEventListener("change", () => {
      // the page again: which images the map draws from sets the sizes it offers
      const params = new URLSearchParams(location.search); // the page's state, z included
      params.set("split", splitSelect.value);
      params.delete("n");
      location.assign(`${location.pathname}?${params}`);
    });
  }
  for (const [select, key] of [[methodSelect, "method"], [sizeSelect, "n"]]) {
    select.addEventListener("change", () => {
      setParam(key, select.value);
      ready = new Promise((resolve) => (painted = resolve));
      fetchMap();
    });
  }
  new ResizeObserver(() => {
    if (fit() && map) draw();
  }).observe(frame);
  matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener("change", () => {
    if (fit() && map) draw();
  });

  // The page's handle on the map, for static/map_select.js and the tests.
  window.latentMapView = {
    get ready() {
      return ready;
    },
    selectPolygon: (slot, polygon) => tools.select(slot, polygon),
    clear: (slot) => tools.clear(slot),
    toScreen: (x, y) => toScreen([x, y]),
    points() {
      const x = new Float32Array(n);
      const y = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        x[i] = xy[2 * i];
        y[i] = xy[2 * i + 1];
      }
      return { x, y, indices: map.indices };
    },
  };

  fit();
  fetchMap();
})();
