// /compare's direction slider: one t for both models, each picture at z_start + t·v with v that
// model's own direction (they differ: each model has its own latent space), z_start the z the
// page's sliders hold (static/explore.js says so with `latent:z`). The section is an htmx
// fragment (templates/partials/direction.html), so this binds to it whenever it is swapped in.
//
// As on the explore page, the drag paints from memory: when the section arrives, after z rests
// and on a grab, each model's strip (GET /api/models/{name}/path.png) decodes every position t,
// sliced into that picture's cache under the decode URL the position asks for. Painted frames
// go to window.__directionPaints ({model, cached, ms}, input event → next frame), for bench/.
"use strict";

(() => {
  const root = document.getElementById("explorer");
  if (!root) return;
  const latents = Array.from(root.querySelectorAll('input[type="range"][data-dim]')).sort(
    (a, b) => Number(a.dataset.dim) - Number(b.dataset.dim),
  );
  const ranges = latents.map((s) => ({ lo: Number(s.min), hi: Number(s.max) }));
  const bounds = (attr) => latents.map((s) => s.getAttribute(attr)).join(",");
  let zStart = latents.map((s) => Number(s.dataset.value));
  let label = root.dataset.label === "" ? null : Number(root.dataset.label);
  const paints = (window.__directionPaints = []);
  const strips = (window.__directionStrips = window.__directionStrips || []);
  const zText = (values) => values.map((v) => v.toFixed(2)).join(",");
  // what explore.js's `latent:set` makes of a z: hundredths (Math.round), within each range
  const settle = (values) =>
    values.map((v, i) => Math.max(ranges[i].lo, Math.min(ranges[i].hi, Math.round(v * 100) / 100)));

  function painter(canvas) {
    const model = canvas.dataset.name;
    const api = `/api/models/${encodeURIComponent(model)}`;
    const vector = canvas.dataset.vector.split(",").map(Number);
    const own = root.querySelector(`canvas.decoded[data-model="${CSS.escape(model)}"]`);
    const conditional = own !== null && own.dataset.kind === "cvae";
    if (own) [canvas.width, canvas.height] = [own.width, own.height];
    // one request in flight, the newest position waiting behind it (static/painter.js); a
    // failed decode leaves the picture as it was (the page's own pictures say why)
    const { cache, fetchBitmap, request, adopt } = window.latentPainter(
      canvas,
      model,
      paints,
      () => {},
    );
    const decodeUrl = (values) =>
      `${api}/decode.png?z=${zText(values)}` + (conditional && label !== null ? `&label=${label}` : "");
    const at = (t) => settle(zStart.map((v, i) => v + t * vector[i]));
    const show = (t, t0) => request(decodeUrl(at(t)), t0);
    // t = 0 is the explorer's own picture of the model: copied, not asked for again
    function mirror() {
      if (!own || own.dataset.shown === undefined) return;
      adopt(own.dataset.shown, own);
    }

    const fetched = new Map(); // strip URL → promise
    function loadStrip(lo, hi, step) {
      const params = new URLSearchParams({
        z: zStart.map(String).join(","),
        v: vector.map(String).join(","),
        lo: lo.toFixed(2),
        hi: hi.toFixed(2),
        step: step.toFixed(2),
        lower: bounds("min"),
        upper: bounds("max"),
      });
      if (conditional && label !== null) params.set("label", String(label));
      const url = `${api}/path.png?${params}`;
      if (fetched.has(url)) return fetched.get(url);
      const start = zStart.slice();
      const loH = Math.round(lo * 100);
      const stepH = Math.round(step * 100);
      const done = fetchBitmap(url)
        .then(async (strip) => {
          const size = strip.height;
          const count = Math.round(strip.width / size);
          for (let k = 0; k < count; k++) {
            const t = (loH + k * stepH) / 100; // Number(range.value) at that position
            const key = decodeUrl(settle(start.map((v, i) => v + t * vector[i])));
            if (!cache.has(key)) cache.set(key, await createImageBitmap(strip, k * size, 0, size, size));
          }
          strips.push({ model, tiles: count, z: start.join(",") });
        })
        .catch(() => fetched.delete(url));
      fetched.set(url, done);
      return done;
    }
    return { show, mirror, loadStrip };
  }

  let bound = null; // the section's range input, once bound
  let painters = [];
  let timer = null;
  function loadStrips() {
    clearTimeout(timer);
    if (!bound) return Promise.resolve();
    const [lo, hi, step] = [bound.min, bound.max, bound.step].map(Number);
    return Promise.all(painters.map((p) => p.loadStrip(lo, hi, step)));
  }
  let move = () => {};

  function bind() {
    const range = document.getElementById("direction-compare-t");
    if (!range || range === bound) return;
    bound = range;
    const output = document.getElementById("direction-compare-t-value");
    painters = Array.from(document.querySelectorAll("canvas.direction-live[data-vector]")).map(painter);
    move = (t0) => {
      const t = Number(range.value);
      output.textContent = t.toFixed(2);
      for (const p of painters) p.show(t, t0);
    };
    range.addEventListener("input", (ev) => move(ev.timeStamp || performance.now()));
    range.addEventListener("pointerdown", loadStrips);
    range.addEventListener("focus", loadStrips);
    for (const p of painters) p.mirror();
    // grabbed once the strips are in memory (or after 1.5 s without them), as on the explore page
    const waited = new Promise((resolve) => setTimeout(resolve, 1500));
    Promise.race([loadStrips(), waited]).then(() => {
      range.disabled = false;
      range.closest("[data-slider]").dataset.ready = "true";
    });
  }

  root.addEventListener("latent:z", (ev) => {
    zStart = ev.detail.z;
    if (ev.detail.label !== undefined) label = ev.detail.label;
    if (!bound) return;
    // the sliders above moved z: t starts again from there; the pictures follow with the
    // strips, once z rests (not a decode per step of a latent slider's drag)
    bound.value = "0";
    document.getElementById("direction-compare-t-value").textContent = "0.00";
    clearTimeout(timer);
    timer = setTimeout(() => loadStrips().then(() => move(performance.now())), 300);
  });
  document.body.addEventListener("htmx:load", bind); // fired on each element htmx swaps in
  bind();
})();
