// Selections A and B on the latent map (/map): each `map:selection` from the map's lasso and box
// (static/map_tools.js) is kept by the server (POST /api/models/{name}/selections, with the
// page's data=NAME), which answers what the images have in common under the model: their mean
// reconstruction, some of them, a summary of each column, a CSV of their indices. With both A
// and B, the direction from A's mean μ to B's (GET .../selections/direction) goes to the
// direction slider (`direction:use`, static/direction.js) and a link carries it to /compare.
// Each slot's polygon goes into the URL (sel_a, sel_b: "x,y;x,y;…" in the map's coordinates)
// and is drawn again when the page opens at that URL.
"use strict";

(() => {
  const root = document.getElementById("explorer");
  const box = document.getElementById("map");
  const panel = document.getElementById("map-selection");
  if (!root || !box || !panel) return;
  const model = root.dataset.model;
  const api = `/api/models/${encodeURIComponent(model)}`;
  const data = new URL(box.dataset.api, location.href).searchParams.get("data");
  const dataQuery = data ? `data=${encodeURIComponent(data)}` : "";
  const SLOTS = ["A", "B"];
  const PARAM = { A: "sel_a", B: "sel_b" };
  const els = Object.fromEntries(
    SLOTS.map((s) => {
      const el = panel.querySelector(`.map-sel-slot[data-slot="${s}"]`);
      return [
        s,
        {
          el,
          count: el.querySelector(".map-sel-count"),
          status: el.querySelector(".map-sel-status"),
          mean: el.querySelector(".map-sel-mean img"),
          images: el.querySelector(".map-sel-images"),
          columns: el.querySelector(".map-sel-columns tbody"),
          csv: el.querySelector(".map-sel-csv"),
        },
      ];
    }),
  );
  const directionBox = panel.querySelector(".map-sel-direction");
  const directionText = panel.querySelector(".map-sel-direction-text");
  const useButton = document.getElementById("map-sel-use");
  const compareLink = document.getElementById("map-sel-compare");
  const state = { A: null, B: null }; // {id, answer} once the server has it
  const asked = { A: 0, B: 0 }; // each slot's latest request: older answers are dropped
  let direction = null;
  window.__mapSelections = state; // for the tests

  const withData = (path) => (dataQuery ? `${path}${path.includes("?") ? "&" : "?"}${dataQuery}` : path);
  const wait = (seconds) => new Promise((r) => setTimeout(r, seconds * 1000));

  // ---- the URL: each slot's polygon
  function polygonText(polygon) {
    return polygon.map(([x, y]) => `${+x.toFixed(4)},${+y.toFixed(4)}`).join(";");
  }
  function parsePolygon(text) {
    const points = text.split(";").map((p) => p.split(",").map(Number));
    const ok = points.length >= 3 && points.every((p) => p.length === 2 && p.every(Number.isFinite));
    return ok ? points : null;
  }
  function setParam(slot, polygon) {
    const url = new URL(location.href);
    if (polygon.length) url.searchParams.set(PARAM[slot], polygonText(polygon));
    else url.searchParams.delete(PARAM[slot]);
    history.replaceState(history.state, "", url);
  }

  // ---- one slot
  function clearSlot(slot) {
    state[slot] = null;
    els[slot].el.hidden = true;
    panel.hidden = SLOTS.every((s) => !state[s] && els[s].el.hidden);
  }

  function showColumns(tbody, columns) {
    tbody.replaceChildren(
      ...columns.map((c) => {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = c.name;
        const td = document.createElement("td");
        let text;
        if (c.kind === "categorical") {
          text = c.counts.map((v) => `${v.value} ${v.count.toLocaleString("en")}`).join(" · ") || "—";
        } else {
          text =
            c.mean === null
              ? "—"
              : `mean ${c.mean.toPrecision(3)} (${c.low.toPrecision(3)} to ${c.high.toPrecision(3)})`;
        }
        if (c.missing) text += ` · ${c.missing.toLocaleString("en")} without`;
        td.textContent = text;
        tr.append(th, td);
        return tr;
      }),
    );
  }

  function show(slot, answer) {
    const e = els[slot];
    e.count.textContent = `· ${answer.count.toLocaleString("en")} images`;
    e.status.textContent = "";
    e.mean.src = answer.mean_reconstruction;
    e.mean.title =
      answer.reconstructed < answer.count
        ? `the mean of ${answer.reconstructed} of them (a random sample)`
        : `the mean of all ${answer.count}`;
    e.images.replaceChildren(
      ...answer.shown.map((i, k) => {
        const img = document.createElement("img");
        img.src = answer.shown_urls[k];
        img.alt = `image ${i}`;
        img.title = `image ${i}`;
        img.width = 48;
        img.height = 48;
        img.loading = "lazy";
        return img;
      }),
    );
    showColumns(e.columns, answer.columns);
    e.csv.href = answer.csv;
    e.csv.download = `selection-${slot}-${answer.id}.csv`;
  }

  async function keep(slot, indices) {
    const mine = ++asked[slot];
    const e = els[slot];
    panel.hidden = false;
    e.el.hidden = false;
    e.count.textContent = `· ${indices.length.toLocaleString("en")} images`;
    e.status.textContent = "reading what they have in common…";
    const body0 = JSON.stringify({ indices: Array.from(indices) });
    const post = () =>
      fetch(withData(`${api}/selections`), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: body0,
      });
    let resp = await post();
    // a data set still being encoded: asked again (the same images are the same selection)
    while (resp.status === 202 && mine === asked[slot]) {
      const pending = await resp.json();
      e.status.textContent = pending.detail;
      await wait(pending.retry_after || 5);
      resp = await post();
    }
    if (mine !== asked[slot]) return;
    const body = await resp.json();
    if (!resp.ok) {
      e.status.textContent = body.detail || `the server said ${resp.status}`;
      state[slot] = null;
      return;
    }
    state[slot] = { id: body.id, answer: body };
    show(slot, body);
  }

  // ---- A → B
  async function updateDirection() {
    direction = null;
    state.direction = null;
    if (!state.A || !state.B) {
      directionBox.hidden = true;
      return;
    }
    const [a, b] = [state.A.id, state.B.id];
    directionBox.hidden = false;
    directionText.textContent = "reading the direction from A to B…";
    const resp = await fetch(withData(`${api}/selections/direction?source=${a}&target=${b}`));
    if (!state.A || !state.B || state.A.id !== a || state.B.id !== b) return;
    const body = await resp.json();
    if (!resp.ok) {
      directionText.textContent = body.detail || `the server said ${resp.status}`;
      return;
    }
    direction = body;
    state.direction = body;
    directionText.textContent =
      `${body.about}: |v| = ${body.norm.toFixed(2)}. The direction slider moves z along it ` +
      "(t = 1 carries A's mean to B's).";
    const link = new URL("/compare", location.href);
    link.searchParams.set("a", model);
    link.searchParams.set("sel_a", a);
    link.searchParams.set("sel_b", b);
    if (data) link.searchParams.set("data", data);
    compareLink.href = link.pathname + link.search;
    use();
  }

  function use() {
    if (!direction) return;
    root.dispatchEvent(
      new CustomEvent("direction:use", {
        detail: { vector: direction.vector, name: direction.name, about: direction.about },
      }),
    );
  }
  useButton.addEventListener("click", use);

  root.addEventListener("map:selection", async (ev) => {
    const { slot, polygon, indices } = ev.detail;
    setParam(slot, polygon);
    if (!indices.length) {
      asked[slot]++;
      clearSlot(slot);
      updateDirection();
      return;
    }
    state[slot] = null;
    await keep(slot, indices);
    updateDirection();
  });

  // ---- a URL with selections: drawn again once the map is
  const wanted = SLOTS.map((s) => [s, new URLSearchParams(location.search).get(PARAM[s])]).filter(
    ([, text]) => text,
  );
  if (wanted.length && window.latentMapView) {
    window.latentMapView.ready.then(() => {
      for (const [slot, text] of wanted) {
        const polygon = parsePolygon(text);
        if (polygon) window.latentMapView.selectPolygon(slot, polygon);
      }
    });
  }
})();
