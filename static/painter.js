// One picture that follows a drag, shared by the explore pages (static/explore.js for a flat
// latent, static/spatial.js for a spatial one) and /compare's direction slider
// (static/direction_compare.js): one decode request in flight at a time, the
// newest position waiting behind it (older ones are dropped, never painted, so a stale frame
// cannot flicker backwards), decoded bitmaps kept in a small least-recently-used cache so that
// revisited positions and sliced sweeps paint at once. Every paint is timed from its input
// event into `paints` (read by bench/ and the browser tests).
"use strict";

window.latentPainter = (canvas, model, paints, showError) => {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  const cache = new Map(); // url → ImageBitmap, least recently used first
  let inflight = false;
  let pending = null; // {url, t0}: the newest position, waiting for the in-flight one
  let shown = null;

  function paint(url, bitmap, t0, cached) {
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    shown = url;
    canvas.dataset.shown = url;
    requestAnimationFrame(() => paints.push({ model, cached, ms: performance.now() - t0 }));
  }

  function remember(url, bitmap) {
    cache.delete(url);
    cache.set(url, bitmap);
    if (cache.size > 4000) cache.delete(cache.keys().next().value);
  }

  async function fetchBitmap(url) {
    const resp = await fetch(url, { cache: "force-cache" });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({ detail: resp.statusText }));
      throw new Error(body.detail);
    }
    return createImageBitmap(await resp.blob());
  }

  function request(url, t0) {
    if (url === shown) return;
    const hit = cache.get(url);
    if (hit) {
      remember(url, hit);
      pending = null; // a newer position overtakes anything queued
      paint(url, hit, t0, true);
      return;
    }
    if (inflight) {
      pending = { url, t0 };
      return;
    }
    inflight = true;
    fetchBitmap(url)
      .then((bitmap) => {
        remember(url, bitmap);
        // paint only if no newer position is waiting: a stale frame would flicker backwards
        if (pending === null) paint(url, bitmap, t0, false);
        showError(null);
      })
      .catch((err) => showError(`${model}: ${err.message}`))
      .finally(() => {
        inflight = false;
        if (pending !== null) {
          const next = pending;
          pending = null;
          request(next.url, next.t0);
        }
      });
  }

  // a picture drawn elsewhere (another canvas showing `url`), taken as this one's
  function adopt(url, source) {
    ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
    shown = url;
    canvas.dataset.shown = url;
  }

  return { cache, paint, remember, fetchBitmap, request, adopt };
};

// An upload zone that takes dropped files as well as the file picker's: `onFiles(files)` with
// the dropped FileList (not called for a drop of no files).
window.latentDropzone = (drop, onFiles) => {
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    if (ev.dataTransfer.files.length) onFiles(ev.dataTransfer.files);
  });
};

// The background sweeps of one explorer (static/explore.js, static/spatial.js): every slider's
// strip at the current z, `prefetch(key)` one at a time (a strip is many decodes, and a decode
// of the drag must not wait behind several), then `onIdle()`. `reorder(keys, from)` starts over
// after a change, keys in slider order, the rows nearest `from` (the row let go; -1: none, row
// order) first and the row below before the row above: a hand goes on to a neighbour more often
// than across the page, and down the list (most informative first) more often than up. `first`
// fetches the strip about to be grabbed beside whatever is loading; while `held` (a slider
// held) the queue waits.
window.latentSweepQueue = (prefetch, onIdle = () => {}) => {
  let queue = [];
  let running = false;
  const state = { held: false };
  async function pump() {
    if (running) return;
    running = true;
    while (queue.length && !state.held) await prefetch(queue.shift());
    running = false;
    if (!queue.length && !state.held) onIdle();
  }
  function reorder(keys, from = -1) {
    const rank = (row) => (from < 0 ? row : 2 * Math.abs(row - from) - (row > from ? 1 : 0));
    queue = keys
      .map((key, row) => [rank(row), key])
      .sort((a, b) => a[0] - b[0])
      .map(([, key]) => key);
    return queue.slice();
  }
  function first(key) {
    queue = queue.filter((q) => q !== key);
    prefetch(key);
  }
  function resume() {
    // the pointer let go of a held slider
    if (!state.held) return;
    state.held = false;
    pump();
  }
  return { state, pump, reorder, first, resume };
};
