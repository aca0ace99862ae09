// The direction slider: z = z_start + t·vector along a direction fetched once per choice from
// GET /api/models/{name}/direction (with the page's data=NAME, read from a data set's columns:
// 202 while the set's encoding is computed, shown and asked again after Retry-After), or handed
// over by another script (`direction:use` below). It talks to the explorer (static/explore.js)
// only through its events: `latent:z` says where z is, `latent:set` moves it (`live` while
// dragged, so the pictures follow at drag speed and the traversals wait for the release), and
// `latent:tiles` hands it pictures to keep.
//
// Paint from memory: once a direction is chosen and z is known (and again on a grab, should
// that come first), one request for the slider's strip, GET /api/models/{name}/path.png, decodes
// every position t from z_start; its tiles go into the explorer's cache under the decode URL each
// position produces, so a drag asks the server for nothing.
//
// `direction:use` on #explorer, detail {vector: number[] (one per latent), name, about}: the
// slider drives that vector, shown as the chosen direction under its name (another choice in the
// picker goes back to the model's own directions; choosing it again comes back).
"use strict";

(() => {
  const root = document.getElementById("explorer");
  const box = document.getElementById("direction-slider");
  if (!root || !box) return;
  const model = box.dataset.model;
  const modelApi = `/api/models/${encodeURIComponent(model)}`;
  const data = box.dataset.data; // a data set's name, or "" for the model's own images
  const choice = document.getElementById("direction-slider-choice");
  // one from/to pair per set of classes: the model's own (data-column=""), or a column's
  const groups = Array.from(box.querySelectorAll(".direction-slider-classes"));
  const range = document.getElementById("direction-slider-t");
  const output = document.getElementById("direction-slider-t-value");
  const fit = document.getElementById("direction-slider-fit");
  const canvas = root.querySelector(`canvas.decoded[data-model="${CSS.escape(model)}"]`);
  const conditional = canvas !== null && canvas.dataset.kind === "cvae";

  // the explorer's sliders in latent order: the z it holds until its first event, and the
  // ranges it holds z within (the strip's tiles are held within them too)
  const latents = Array.from(root.querySelectorAll('input[type="range"][data-dim]')).sort(
    (a, b) => Number(a.dataset.dim) - Number(b.dataset.dim),
  );
  const bounds = (attr) => latents.map((s) => s.getAttribute(attr)).join(",");
  let z = latents.map((s) => Number(s.dataset.value));
  let label = root.dataset.label === "" ? null : Number(root.dataset.label);
  let zStart = z.slice();
  let vector = null;
  let used = null; // {vector, name, about} from `direction:use`
  let moving = false; // our own latent:set is being answered

  // strips loaded, for tests and bench/: {model, tiles, z}
  const strips = (window.__directionStrips = window.__directionStrips || []);
  const fetched = new Map(); // strip URL → promise, the newest last
  let stripTimer = null;
  const STRIP_WAIT_MS = 1500; // a strip of 201 dSprites tiles: 0.1 s on one thread

  function stripUrl() {
    const lo = Number(range.min);
    const hi = Number(range.max);
    const step = Number(range.step);
    // String(x): the shortest text that reads back as the same double, so the server computes
    // z_start + t·v from exactly the numbers move() does
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
    return { url: `${modelApi}/path.png?${params}`, lo, step };
  }

  // the strip for the slider's range from z_start, its tiles handed to the explorer's cache;
  // resolves once they are there (at once when they already are)
  function loadStrip() {
    clearTimeout(stripTimer);
    if (!vector) return Promise.resolve();
    const { url, lo, step } = stripUrl();
    if (fetched.has(url)) return fetched.get(url);
    const start = zStart.slice();
    const along = vector.slice();
    const at = conditional ? label : null;
    const loH = Math.round(lo * 100);
    const stepH = Math.round(step * 100);
    const done = fetch(url, { cache: "force-cache" })
      .then((resp) => {
        if (!resp.ok) throw new Error(resp.statusText);
        return resp.blob();
      })
      .then(createImageBitmap)
      .then(async (strip) => {
        const size = strip.height;
        const count = Math.round(strip.width / size);
        const bitmaps = await Promise.all(
          Array.from({ length: count }, (_, k) => createImageBitmap(strip, k * size, 0, size, size)),
        );
        const tiles = bitmaps.map((bitmap, k) => {
          const t = (loH + k * stepH) / 100; // Number(range.value) at that position
          return { z: start.map((v, i) => v + t * along[i]), bitmap }; // as move() computes it
        });
        root.dispatchEvent(new CustomEvent("latent:tiles", { detail: { model, label: at, tiles } }));
        strips.push({ model, tiles: count, z: start.join(",") });
      })
      .catch(() => fetched.delete(url)); // the drag still works, one decode per position
    fetched.set(url, done);
    if (fetched.size > 8) fetched.delete(fetched.keys().next().value);
    return done;
  }
  // in the background, once z has rested a moment: a latent slider's drag moves z_start at
  // pointer rate, and each step would be a strip
  const loadStripSoon = () => {
    clearTimeout(stripTimer);
    stripTimer = setTimeout(loadStrip, 300);
  };

  function restart() {
    // t = 0 at the z the explorer holds now
    zStart = z.slice();
    range.value = "0";
    output.textContent = "0.00";
    box.dataset.zStart = zStart.join(",");
  }

  root.addEventListener("latent:z", (ev) => {
    z = ev.detail.z;
    if (ev.detail.label !== undefined) label = ev.detail.label;
    if (moving) return;
    restart(); // set by something else: the slider starts again from there
    loadStripSoon();
  });

  function move(live, t0) {
    if (!vector) return;
    const t = Number(range.value);
    output.textContent = t.toFixed(2);
    moving = true;
    try {
      const values = zStart.map((v, i) => v + t * vector[i]);
      root.dispatchEvent(new CustomEvent("latent:set", { detail: { z: values, live, t0 } }));
    } finally {
      moving = false;
    }
  }
  range.addEventListener("input", (ev) => move(true, ev.timeStamp || performance.now()));
  range.addEventListener("change", () => move(false, performance.now()));
  // a grab that comes before the background load: the strip now
  range.addEventListener("pointerdown", loadStrip);
  range.addEventListener("focus", loadStrip);

  function describe(d) {
    const f = d.fit;
    const chance = f.chance === null || f.chance === undefined ? "" : ` (chance ${f.chance.toFixed(2)})`;
    const dims = d.vector.length;
    const left = f.left_out ? ` · ${f.left_out.toLocaleString("en")} images with no ${d.column}, left out` : "";
    return (
      `${f.measure} ${f.value.toFixed(2)} on ${f.held_out.toLocaleString("en")} held-out images${chance}${left}` +
      ` · participation ratio ${d.participation_ratio.toFixed(2)} of ${dims} latents` +
      ` · length ${d.length.toFixed(2)}`
    );
  }

  function drive(next) {
    // the slider moves along `next` from the z the explorer holds now; it can be grabbed once
    // its strip is in memory, so the first drag paints from it too (or after STRIP_WAIT_MS
    // without it: then each position is decoded as it comes)
    vector = next;
    box.dataset.vector = vector.join(",");
    box.dataset.ready = "false";
    range.disabled = true;
    restart();
    const token = asked;
    const waited = new Promise((resolve) => setTimeout(resolve, STRIP_WAIT_MS));
    Promise.race([loadStrip(), waited]).then(() => {
      if (token !== asked) return; // another choice overtook this one
      box.dataset.ready = "true";
      range.disabled = false;
    });
  }

  let asked = 0;
  let poll = null;
  async function load() {
    const token = ++asked;
    clearTimeout(poll);
    const option = choice.selectedOptions[0];
    const column = choice.value === "classes" ? option.dataset.column : null;
    for (const g of groups) g.hidden = g.dataset.column !== column;
    if (choice.value === "use") {
      fit.textContent = `${used.name}: ${used.about}`;
      fit.title = used.about;
      drive(used.vector);
      return;
    }
    const params = new URLSearchParams();
    if (column !== null) {
      const group = groups.find((g) => g.dataset.column === column);
      params.set("from", group.querySelector('[data-role="from"]').value);
      params.set("to", group.querySelector('[data-role="to"]').value);
      if (column) params.set("column", column);
    } else {
      params.set("factor", option.dataset.factor);
    }
    if (data) params.set("data", data);
    vector = null;
    range.disabled = true;
    box.dataset.ready = "false";
    fit.textContent = "loading the direction…";
    try {
      const resp = await fetch(`${modelApi}/direction?${params}`);
      const body = await resp.json().catch(() => ({ detail: resp.statusText }));
      if (token !== asked) return; // another choice overtook this one
      if (resp.status === 202) {
        // the data set's encoding is being computed: say how far, ask again when told to
        const wait = Number(resp.headers.get("Retry-After")) || body.retry_after || 5;
        box.dataset.ready = "encoding";
        fit.textContent = `${body.detail}; the direction follows once it is kept (asking again in ${wait} s)`;
        poll = setTimeout(load, wait * 1000);
        return;
      }
      if (!resp.ok) throw new Error(body.detail);
      fit.textContent = describe(body);
      fit.title = body.fit.about;
      drive(body.vector);
    } catch (err) {
      if (token !== asked) return;
      box.dataset.ready = "error";
      fit.textContent = `no direction: ${err.message}`;
    }
  }
  choice.addEventListener("change", load);
  for (const el of box.querySelectorAll(".direction-slider-classes select")) el.addEventListener("change", load);

  // another script's direction (the map's selections): detail {vector, name, about}
  root.addEventListener("direction:use", (ev) => {
    const { vector: next, name, about } = ev.detail;
    const ok = Array.isArray(next) && next.length === latents.length && next.every(Number.isFinite);
    if (!ok) {
      fit.textContent = `no direction: ${name || "it"} has ${next?.length ?? 0} values, not one per latent (${latents.length})`;
      return;
    }
    used = { vector: next.map(Number), name: name || "a direction", about: about || "" };
    let option = choice.querySelector('option[value="use"]');
    if (!option) {
      option = new Option("", "use");
      choice.prepend(option);
    }
    option.textContent = used.name;
    choice.value = "use";
    box.hidden = false;
    load();
  });
  if (choice.options.length) load();
})();
