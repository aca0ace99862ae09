// The direction slider: z = z_start + t·vector along a direction fetched once per choice from
// GET /api/models/{name}/direction (with the page's data=NAME, read from a data set's columns:
// 202 while the set's encoding is computed, shown and asked again after Retry-After). It talks to
// the explorer (static/explore.js) only through its events: `latent:z` says where z is,
// `latent:set` moves it (`live` while dragged, so the pictures follow at drag speed and the
// traversals wait for the release).
"use strict";

(() => {
  const root = document.getElementById("explorer");
  const box = document.getElementById("direction-slider");
  if (!root || !box) return;
  const api = `/api/models/${encodeURIComponent(box.dataset.model)}/direction`;
  const data = box.dataset.data; // a data set's name, or "" for the model's own images
  const choice = document.getElementById("direction-slider-choice");
  // one from/to pair per set of classes: the model's own (data-column=""), or a column's
  const groups = Array.from(box.querySelectorAll(".direction-slider-classes"));
  const range = document.getElementById("direction-slider-t");
  const output = document.getElementById("direction-slider-t-value");
  const fit = document.getElementById("direction-slider-fit");

  // the z the explorer holds, from its sliders until its first event
  let z = Array.from(root.querySelectorAll('input[type="range"][data-dim]'))
    .sort((a, b) => Number(a.dataset.dim) - Number(b.dataset.dim))
    .map((s) => Number(s.dataset.value));
  let zStart = z.slice();
  let vector = null;
  let moving = false; // our own latent:set is being answered

  function restart() {
    // t = 0 at the z the explorer holds now
    zStart = z.slice();
    range.value = "0";
    output.textContent = "0.00";
    box.dataset.zStart = zStart.join(",");
  }

  root.addEventListener("latent:z", (ev) => {
    z = ev.detail.z;
    if (!moving) restart(); // set by something else: the slider starts again from there
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

  let asked = 0;
  let poll = null;
  async function load() {
    const token = ++asked;
    clearTimeout(poll);
    const params = new URLSearchParams();
    const option = choice.selectedOptions[0];
    const column = choice.value === "classes" ? option.dataset.column : null;
    for (const g of groups) g.hidden = g.dataset.column !== column;
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
      const resp = await fetch(`${api}?${params}`);
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
      vector = body.vector;
      fit.textContent = describe(body);
      fit.title = body.fit.about;
      box.dataset.vector = vector.join(",");
      box.dataset.ready = "true";
      range.disabled = false;
      restart();
    } catch (err) {
      if (token !== asked) return;
      box.dataset.ready = "error";
      fit.textContent = `no direction: ${err.message}`;
    }
  }
  choice.addEventListener("change", load);
  for (const el of box.querySelectorAll(".direction-slider-classes select")) el.addEventListener("change", load);
  load();
})();
