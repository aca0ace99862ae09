// Explore page of a spatial latent (templates/spatial.html, app/web/spatial.py): an
// AutoencoderKL's z is C channels over an h×w grid. One slider per channel adds to that channel
// inside a region painted on the picture; the channels are drawn beside it as small images.
//
// As on the flat explore page (static/explore.js, both painting through static/painter.js): one
// decode in flight at a time, the newest position waiting behind it; every value kept in whole hundredths so the URLs the page writes
// are the ones a channel sweep's tiles stand for; each channel's sweep (its slider's every
// position, one strip) fetched once the picture is up and again after every change, so a drag
// paints from memory from the first grab.
//
// Every `.spatial[data-shape]` element is one such explorer, finding its controls inside itself:
// the explore page has one, /compare by one image one per spatial model, where `latent:encoded`
// (detail {mu}) starts it from an encoding made elsewhere (static/compare_image.js).
"use strict";

(() => {
  // one list of paint timings and sweeps for every explorer on the page (static/explore.js too)
  const paints = (window.__latentPaints = window.__latentPaints || []);
  const sweeps = (window.__latentSweeps = window.__latentSweeps || []);
  document.querySelectorAll(".spatial[data-shape]").forEach((root) => spatialExplorer(root, paints, sweeps));
})();

function spatialExplorer(root, paints, sweeps) {
  const model = root.dataset.model;
  const [C, H, W] = root.dataset.shape.split(",").map(Number);
  const cells = H * W;
  const span = Number(root.dataset.span);
  const step = Number(root.dataset.step);
  const toH = (v) => Math.round(Number(v) * 100);
  const spanH = toH(span);
  const stepH = toH(step);
  // any z value may be offset by ±span and must stay inside the model's limit
  const baseLimitH = toH(root.dataset.limit) - spanH;
  const api = `/api/models/${encodeURIComponent(model)}`;

  const clampBase = (values) =>
    values.map((v) => Math.max(-baseLimitH, Math.min(baseLimitH, toH(v))));
  let base = clampBase(root.dataset.z.split(","));
  const offsets = new Array(C).fill(0); // hundredths, per channel
  const mask = new Array(cells).fill(1); // the region: 1 where the sliders act

  // z (hundredths) with every channel's offset inside the region, except channel `skip`'s
  function current(skip = -1) {
    const z = base.slice();
    for (let c = 0; c < C; c++) {
      if (c === skip || offsets[c] === 0) continue;
      for (let i = 0; i < cells; i++) if (mask[i]) z[c * cells + i] += offsets[c];
    }
    return z;
  }
  const zText = (z) => z.map((v) => (v / 100).toFixed(2)).join(",");
  // the region as app/web/spatial.py reads it: bits row-major, first cell the highest
  function maskHex() {
    let text = "";
    for (let i = 0; i < cells; i += 4) {
      let digit = 0;
      for (let k = 0; k < 4; k++) digit = (digit << 1) | (i + k < cells ? mask[i + k] : 0);
      text += digit.toString(16);
    }
    return text;
  }

  const errorBox = root.querySelector(".decode-error");
  function showError(message) {
    errorBox.hidden = !message;
    errorBox.textContent = message || "";
  }

  // --- the picture (static/painter.js) -------------------------------------------------------
  const canvas = root.querySelector("canvas.decoded");
  const { cache, paint, remember, fetchBitmap, request } = window.latentPainter(
    canvas,
    model,
    paints,
    showError,
  );
  const decodeUrl = (z) => `${api}/decode.png?z=${zText(z)}`;

  // --- channel sweeps: every position of one channel's slider, one strip ----------------------
  const fetched = new Map(); // url → promise
  function prefetch(c) {
    const without = current(c);
    const region = mask.slice();
    const hex = maskHex();
    const url =
      `${api}/channel-sweep.png?z=${zText(without)}&channel=${c}&mask=${hex}` +
      `&lo=${(-span).toFixed(2)}&hi=${span.toFixed(2)}&step=${step.toFixed(2)}`;
    if (fetched.has(url)) return fetched.get(url);
    const done = fetchBitmap(url)
      .then(async (strip) => {
        const size = strip.height;
        const n = Math.round(strip.width / size);
        const tiles = await Promise.all(
          Array.from({ length: n }, (_, k) => createImageBitmap(strip, k * size, 0, size, size)),
        );
        tiles.forEach((tile, k) => {
          const t = -spanH + k * stepH;
          const z = without.slice();
          for (let i = 0; i < cells; i++) if (region[i]) z[c * cells + i] += t;
          const key = decodeUrl(z);
          if (!cache.has(key)) remember(key, tile);
        });
        sweeps.push({ channel: c, tiles: n, mask: hex });
      })
      .catch(() => fetched.delete(url)); // the drag still works, one decode per position
    fetched.set(url, done);
    return done;
  }
  // Background sweeps (static/painter.js), as on the flat page: every channel's strip at the
  // current z and region, the channel under the pointer first, then the traversal (a hand waits
  // on the strips); a change starts over, a held slider pauses them.
  const sweepQueue = window.latentSweepQueue(prefetch, () => refreshTraverse());
  const channels = [...Array(C).keys()];
  function prefetchAll(from = -1) {
    const order = sweepQueue.reorder(channels, from); // the channel below the one let go first
    // the likeliest next channel now, beside a strip still loading for the old z
    const next = order.find((c) => c !== from);
    if (from >= 0 && next !== undefined) prefetchFirst(next);
    sweepQueue.pump();
  }
  const prefetchFirst = (c) => sweepQueue.first(c);

  // --- the latent's channels, and the region -------------------------------------------------
  const channelCanvases = Array.from(root.querySelectorAll("canvas.channel"));
  function drawChannels(z) {
    for (const cv of channelCanvases) {
      const c = Number(cv.dataset.channel);
      const c2 = cv.getContext("2d");
      const img = c2.createImageData(W, H);
      for (let i = 0; i < cells; i++) {
        const v = Math.max(-1, Math.min(1, z[c * cells + i] / spanH));
        const fade = Math.round(255 * (1 - Math.abs(v)));
        img.data.set(v >= 0 ? [255, fade, fade, 255] : [fade, fade, 255, 255], i * 4);
      }
      c2.putImageData(img, 0, 0);
    }
  }
  const region = root.querySelector("canvas.region");
  const rctx = region.getContext("2d");
  const regionLine = root.querySelector(".region-line");
  function drawRegion() {
    const cw = region.width / W;
    const ch = region.height / H;
    rctx.clearRect(0, 0, region.width, region.height);
    const n = mask.reduce((a, b) => a + b, 0);
    if (n < cells) {
      // the region's cells tinted and outlined; the picture stays visible everywhere
      rctx.fillStyle = "rgba(120, 180, 255, 0.28)";
      rctx.strokeStyle = "rgba(120, 180, 255, 0.9)";
      for (let i = 0; i < cells; i++) {
        if (!mask[i]) continue;
        const x = (i % W) * cw;
        const y = Math.floor(i / W) * ch;
        rctx.fillRect(x, y, cw, ch);
        rctx.strokeRect(x + 0.5, y + 0.5, cw - 1, ch - 1);
      }
    }
    regionLine.textContent =
      n === cells
        ? `Region: every cell (${cells} of ${cells}); drag on the picture to paint a smaller one.`
        : `Region: ${n} of ${cells} cells (tinted); drag on the picture to paint or erase.`;
  }

  const sliders = Array.from(root.querySelectorAll('input[type="range"][data-channel]'));
  const traverse = root.querySelector("img.channel-traverse");
  const outputOf = (c) => root.querySelector(`output[data-channel="${c}"]`);
  function refreshTraverse() {
    const src = `${api}/channel-traverse.png?z=${zText(current())}&mask=${maskHex()}`;
    if (traverse.getAttribute("src") !== src) traverse.src = src;
  }
  function settled() {
    const z = current();
    const url = new URL(window.location.href);
    url.searchParams.set(root.dataset.zParam || "z", zText(z));
    window.history.replaceState(null, "", url);
  }
  function changed(t0) {
    const z = current();
    request(decodeUrl(z), t0);
    drawChannels(z);
  }
  function rebase(values) {
    base = clampBase(values);
    offsets.fill(0);
    for (const s of sliders) {
      s.value = "0";
      outputOf(Number(s.dataset.channel)).textContent = "+0.00";
    }
    changed(performance.now());
    settled();
    prefetchAll();
  }

  for (const s of sliders) {
    const c = Number(s.dataset.channel);
    s.addEventListener("pointerenter", () => prefetchFirst(c));
    s.addEventListener("focus", () => prefetchFirst(c));
    s.addEventListener("pointerdown", () => {
      sweepQueue.state.held = true;
      prefetchFirst(c);
    });
    s.addEventListener("input", (ev) => {
      const t0 = ev.timeStamp || performance.now();
      offsets[c] = toH(s.value);
      const v = offsets[c] / 100;
      outputOf(c).textContent = `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}`;
      changed(t0);
    });
    s.addEventListener("change", () => {
      sweepQueue.state.held = false;
      settled();
      prefetchAll(c); // every other channel's strip was for the old z
    });
  }
  window.addEventListener("pointerup", () => sweepQueue.resume());

  let painting = null; // 1 paints, 0 erases, for the drag under way
  function cellAt(e) {
    const box = region.getBoundingClientRect();
    const x = Math.floor(((e.clientX - box.left) / box.width) * W);
    const y = Math.floor(((e.clientY - box.top) / box.height) * H);
    return x >= 0 && x < W && y >= 0 && y < H ? y * W + x : -1;
  }
  region.addEventListener("pointerdown", (e) => {
    const i = cellAt(e);
    if (i < 0) return;
    region.setPointerCapture(e.pointerId);
    if (mask.every(Boolean)) mask.fill(0); // from the whole image, painting starts a region
    painting = mask[i] ? 0 : 1;
    mask[i] = painting;
    drawRegion();
    changed(performance.now());
  });
  region.addEventListener("pointermove", (e) => {
    if (painting === null) return;
    const i = cellAt(e);
    if (i >= 0 && mask[i] !== painting) {
      mask[i] = painting;
      drawRegion();
      changed(performance.now());
    }
  });
  const endPaint = () => {
    if (painting === null) return;
    painting = null;
    settled();
    prefetchAll();
  };
  region.addEventListener("pointerup", endPaint);
  region.addEventListener("pointercancel", endPaint);
  function setRegion(value) {
    mask.fill(value);
    drawRegion();
    changed(performance.now());
    settled();
    prefetchAll();
  }
  root.querySelector('[data-action="whole"]').addEventListener("click", () => setRegion(1));
  root.querySelector('[data-action="clear-region"]').addEventListener("click", () => setRegion(0));

  async function startFrom(promise) {
    try {
      const resp = await promise;
      const body = await resp.json();
      if (!resp.ok) throw new Error(body.detail);
      rebase(body.mu || body.z[0]);
      showError(null);
    } catch (err) {
      showError(`${model}: ${err.message}`);
    }
  }
  root.querySelector('[data-action="sample"]').addEventListener("click", () => {
    const seed = Math.floor(Math.random() * 1e9);
    startFrom(fetch(`${api}/sample?n=1&seed=${seed}`));
  });
  const datasetButton = root.querySelector('[data-action="dataset"]');
  if (datasetButton) {
    datasetButton.addEventListener("click", () => {
      const index = Math.floor(Math.random() * Number(root.dataset.datasetImages));
      startFrom(fetch(`${api}/encode?index=${index}`));
    });
  }
  const file = root.querySelector("#upload-file");
  if (file) {
    file.addEventListener("change", () => {
      if (!file.files.length) return;
      const form = new FormData();
      form.append("file", file.files[0]);
      startFrom(fetch(`${api}/encode`, { method: "POST", body: form }));
    });
  }
  root.addEventListener("latent:encoded", (ev) => rebase(ev.detail.mu));
  for (const select of root.querySelectorAll("select[data-navigate]")) {
    select.addEventListener("change", () => {
      window.location.href = `/?model=${encodeURIComponent(select.value)}`;
    });
  }

  // first paint: the server rendered the starting z into the fallback <img>
  const first = root.querySelector("img.decoded-initial");
  const drawFirst = () =>
    createImageBitmap(first).then((b) => {
      paint(decodeUrl(current()), b, performance.now(), false);
      prefetchAll();
    });
  if (first.complete && first.naturalWidth) drawFirst();
  else first.addEventListener("load", drawFirst, { once: true });
  drawChannels(current());
  drawRegion();
}
