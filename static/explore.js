// Explore and compare pages: one set of sliders re-decodes every model's picture while dragged.
//
// At pointer rate htmx would add latency, so these few lines set the pictures directly. Per
// picture (static/painter.js): one request in flight at a time, the newest slider position
// waiting behind it (older ones are dropped, never painted), decoded bitmaps kept in a small
// cache so revisited positions paint at once. Grabbing a slider (pointer or keyboard focus) fetches a sweep: one strip with
// that slider's every position decoded, sliced into the cache, so the drag itself paints from
// memory. z is written with two decimals, which is also what makes the server's ETag and the
// browser's HTTP cache useful.
//
// Other scripts put decoded pictures in the same cache with the event `latent:tiles` on
// #explorer, detail {model, label, tiles: [{z, bitmap}]}: each bitmap is kept under the decode
// URL that `latent:set` with that z (and that label: null for none, left out for the page's)
// would ask for, so a drag of the direction slider (static/direction.js) paints from memory.
//
// Every element with `data-latent-dim` is one explorer with its own z: the explore page and
// /compare by one z have one (its sliders drive every picture inside it), /compare by one image
// has one per model (templates/compare_image.html), each finding its controls inside itself.
// `latent:encoded` on an explorer, detail {mu, label}, moves its sliders to an encoding made
// elsewhere (static/compare_image.js).
"use strict";

(() => {
  // paint timings (input event → picture on screen), read by bench/ and the browser tests, and
  // the sweeps sliced into the caches: one list for every explorer on the page
  const paints = (window.__latentPaints = []);
  const sweeps = (window.__latentSweeps = []);
  for (const select of document.querySelectorAll("select[data-navigate]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  document.querySelectorAll("[data-latent-dim]").forEach((root) => explorer(root, paints, sweeps));
})();

function explorer(root, paints, sweeps) {
  const dim = Number(root.dataset.latentDim);
  // sliders in row order (most informative first): the order their sweeps load in
  const sliders = Array.from(root.querySelectorAll('input[type="range"][data-dim]'));
  const rangeOf = (s) => ({ lo: Number(s.min), hi: Number(s.max), step: Number(s.step) });
  const byDim = new Map(sliders.map((s) => [Number(s.dataset.dim), s]));
  const z = new Array(dim).fill(0);
  // the URL's z, to two decimals; the thumb itself snaps to the slider's step
  for (const s of sliders) z[Number(s.dataset.dim)] = Number(s.dataset.value);
  let label = root.dataset.label === "" ? null : Number(root.dataset.label);

  const zText = (values = z) => values.map((v) => v.toFixed(2)).join(",");
  const query = (kind, values = z, at = label) =>
    `z=${zText(values)}` + (at === null || kind !== "cvae" ? "" : `&label=${at}`);
  // what `latent:set` makes of a z: hundredths (Math.round), within each slider's range
  const settle = (values) =>
    values.map((v, i) => {
      const { lo, hi } = rangeOf(byDim.get(i));
      return Math.max(lo, Math.min(hi, Math.round(v * 100) / 100));
    });
  const api = (model) => `/api/models/${encodeURIComponent(model)}`;

  const errorBox = root.querySelector(".decode-error");
  function showError(message) {
    errorBox.hidden = !message;
    errorBox.textContent = message || "";
  }

  function makePanel(canvas) {
    const model = canvas.dataset.model;
    const kind = canvas.dataset.kind;
    const { cache, paint, remember, fetchBitmap, request } = window.latentPainter(
      canvas,
      model,
      paints,
      showError,
    );

    const decodeUrl = (values = z, at = label) =>
      `${api(model)}/decode.png?${query(kind, values, at)}`;
    // a picture decoded elsewhere (latent:tiles), kept as the decode at `values`
    function keep(values, at, bitmap) {
      const key = decodeUrl(values, at);
      if (!cache.has(key)) remember(key, bitmap);
    }
    const update = (t0) => request(decodeUrl(), t0);

    // every position of slider `d` from the current z: tile k of the strip is z[d] = lo + k·step.
    // Resolves once the tiles are in the cache (at once when they already are).
    const fetchedSweeps = new Map(); // url → promise
    function prefetch(d) {
      const { lo, hi, step } = rangeOf(byDim.get(d));
      const at = z.slice();
      at[d] = lo; // the strip does not depend on z[d]: one URL per position of the others
      const url =
        `${api(model)}/sweep.png?${query(kind, at)}&dim=${d}` +
        `&lo=${lo.toFixed(2)}&hi=${hi.toFixed(2)}&step=${step.toFixed(2)}`;
      if (fetchedSweeps.has(url)) return fetchedSweeps.get(url);
      const loH = Math.round(lo * 100);
      const stepH = Math.round(step * 100);
      const atText = zText(at);
      const done = fetchBitmap(url)
        .then(async (strip) => {
          const size = strip.height;
          const tiles = await Promise.all(
            Array.from({ length: Math.round(strip.width / size) }, (_, k) =>
              createImageBitmap(strip, k * size, 0, size, size),
            ),
          );
          tiles.forEach((tile, k) => {
            at[d] = (loH + k * stepH) / 100; // the same hundredths as the server's tile k
            const key = decodeUrl(at);
            if (!cache.has(key)) remember(key, tile);
          });
          sweeps.push({ model, dim: d, tiles: tiles.length, z: atText });
        })
        .catch(() => fetchedSweeps.delete(url)); // the drag still works, one fetch per position
      fetchedSweeps.set(url, done);
      return done;
    }
    const figure = root.querySelector(`figure.traverse[data-model="${model}"]`);
    function refreshTraverse() {
      const span = figure ? `&span=${figure.dataset.span}` : "";
      const base = `${api(model)}/traverse.png?${query(kind)}${span}`;
      const img = root.querySelector(`img.traverse[data-model="${model}"]`);
      const link = root.querySelector(`a.traverse-download[data-model="${model}"]`);
      if (img) img.src = base;
      if (link) link.href = `${base}&scale=2`;
      const classGrid = root.querySelector(`img.class-grid[data-model="${model}"]`);
      if (classGrid) classGrid.src = `${classGrid.dataset.base}&z=${zText()}`;
    }
    // first paint: the server already rendered the URL's state into the fallback <img>
    const first = root.querySelector(`img.decoded-initial[data-model="${model}"]`);
    const drawFirst = () =>
      createImageBitmap(first).then((b) => paint(decodeUrl(), b, performance.now(), false));
    const firstPaint =
      first.complete && first.naturalWidth
        ? drawFirst()
        : new Promise((resolve) => first.addEventListener("load", resolve, { once: true })).then(
            drawFirst,
          );
    return { model, update, refreshTraverse, prefetch, keep, ready: firstPaint };
  }

  const panels = Array.from(root.querySelectorAll("canvas.decoded[data-model]")).map(makePanel);
  // the sweeps start once the first pictures are on screen, so they never delay them
  Promise.all(panels.map((p) => p.ready)).then(() => sweepAll());

  let urlTimer = null;
  function syncUrl() {
    // the URL holds the state, so any view can be bookmarked and shared
    clearTimeout(urlTimer);
    urlTimer = setTimeout(() => {
      // one of several explorers (/compare by one image) keeps the others' values in the URL
      const zParam = root.dataset.zParam;
      const params = new URLSearchParams(zParam ? location.search : root.dataset.urlParams);
      params.set(zParam || "z", zText());
      if (label !== null) params.set(root.dataset.labelParam || "label", String(label));
      history.replaceState(null, "", `${location.pathname}?${params}`);
      // the explore page's link to the map carries the state too, so the marker starts at z
      const mapLink = root.querySelector("#map-link");
      if (mapLink) mapLink.search = `?${params}`;
    }, 150);
  }

  function changed(t0) {
    for (const p of panels) p.update(t0);
    syncUrl();
    // other scripts (the map's marker, the direction slider) follow z through this event
    const detail = { z: z.slice(), label, model: root.dataset.model };
    root.dispatchEvent(new CustomEvent("latent:z", { detail }));
  }
  const refreshTraverses = () => panels.forEach((p) => p.refreshTraverse());

  function setOutput(s) {
    // z, not the thumb: an encoded μ keeps its two decimals between the slider's steps
    document.getElementById(`${s.id}-value`).textContent = z[Number(s.dataset.dim)].toFixed(2);
  }

  // `live`: one step of a drag elsewhere (the direction slider): the pictures follow at once,
  // the traversals and the strips wait for the last step
  function setAll(values, live = false, t0 = performance.now()) {
    settle(values).forEach((v, i) => {
      z[i] = v;
    });
    for (const s of sliders) {
      s.value = z[Number(s.dataset.dim)].toFixed(2);
      setOutput(s);
    }
    sweepQueue.state.held = live;
    changed(t0);
    if (live) return;
    refreshTraverses();
    sweepAll();
  }

  function setLabel(value) {
    label = value;
    root.dataset.label = String(value);
    const radio = root.querySelector(`input.label-radio[value="${value}"]`);
    if (radio) radio.checked = true;
    const hidden = root.querySelector("#upload-label");
    if (hidden) hidden.value = String(value);
  }

  // Background sweeps (static/painter.js): every slider's strip at the current z for every
  // picture of this explorer, one slider at a time, the slider under the pointer first. A change
  // of z or label starts over; holding a slider pauses them.
  const sweepQueue = window.latentSweepQueue((d) => Promise.all(panels.map((p) => p.prefetch(d))));
  const dims = sliders.map((s) => Number(s.dataset.dim));
  function sweepAll(from = -1) {
    sweepQueue.reorder(dims, from); // that slider's own strip stays valid: it omits z[d]
    sweepQueue.pump();
  }
  const sweepFirst = (d) => sweepQueue.first(d);

  sliders.forEach((s, row) => {
    const d = Number(s.dataset.dim);
    s.addEventListener("input", (ev) => {
      z[d] = Number(s.value);
      setOutput(s);
      changed(ev.timeStamp || performance.now());
    });
    s.addEventListener("change", () => {
      sweepQueue.state.held = false;
      refreshTraverses();
      sweepAll(row); // every other slider's strips were for the old z
    });
    s.addEventListener("pointerenter", () => sweepFirst(d));
    s.addEventListener("focus", () => sweepFirst(d));
    s.addEventListener("pointerdown", () => {
      sweepQueue.state.held = true;
      sweepFirst(d);
    });
  });
  window.addEventListener("pointerup", () => sweepQueue.resume());
  for (const radio of root.querySelectorAll("input.label-radio")) {
    radio.addEventListener("change", () => {
      setLabel(Number(radio.value));
      changed(performance.now());
      refreshTraverses();
      sweepAll();
    });
  }
  root.querySelector('[data-action="reset"]').addEventListener("click", () => setAll(new Array(dim).fill(0)));
  root.querySelector('[data-action="sample"]').addEventListener("click", async () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const resp = await fetch(`${api(root.dataset.model)}/sample?n=1&seed=${seed}`);
    setAll((await resp.json()).z[0]);
  });

  // another script sets z (and a CVAE's label): detail {z, label, live, t0}
  root.addEventListener("latent:set", (ev) => {
    const { z: values, label: next, live, t0 } = ev.detail;
    if (next !== undefined && next !== null && label !== null && next !== label) setLabel(next);
    setAll(values, Boolean(live), t0 ?? performance.now());
  });

  // pictures decoded elsewhere: detail {model, label, tiles: [{z, bitmap}]} (see the top)
  root.addEventListener("latent:tiles", (ev) => {
    const { model, tiles } = ev.detail;
    const at = ev.detail.label === undefined ? label : ev.detail.label;
    for (const p of panels.filter((q) => q.model === model)) {
      for (const tile of tiles) p.keep(settle(tile.z), at, tile.bitmap);
    }
  });

  // an encoded image (upload or dataset) moves the sliders to its μ
  function encoded(mu, encodedLabel) {
    if (encodedLabel !== undefined && encodedLabel !== null) setLabel(Number(encodedLabel));
    setAll(mu);
  }
  document.body.addEventListener("htmx:afterSwap", (ev) => {
    if (!root.contains(ev.detail.target)) return; // another explorer's
    const enc = ev.detail.target.querySelector(".encoding[data-mu]");
    if (enc) encoded(JSON.parse(enc.dataset.mu), enc.dataset.label);
  });
  root.addEventListener("latent:encoded", (ev) => encoded(ev.detail.mu, ev.detail.label));

  // drag-and-drop onto the upload zone submits like the file picker
  const drop = root.querySelector("#dropzone");
  const file = root.querySelector("#upload-file");
  if (drop && file) {
    window.latentDropzone(drop, (files) => {
      file.files = files;
      file.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }
}
