// The latent map's selection tools (window.latentMapTools.create, used by static/map.js): a lasso
// (a freehand polygon) and a box, drawn with the pointer over the map, select the points inside
// into slot A or B. The toolbar's buttons choose the tool (Pan, Lasso, Box: toggle buttons, so
// the keyboard reaches them) and the slot the next selection fills; a selection into A moves
// the next one to B while B is empty, so two drags compare two groups. Selected points are
// drawn in front, the rest paled; each slot's polygon is outlined in its colour.
//
// Every change is `map:selection` on #explorer: {slot, polygon: [[x, y], ...] in data
// coordinates, rows: Uint32Array of point rows, indices: Uint32Array of image indices} (empty
// polygon and arrays when a slot is cleared).
"use strict";

(() => {
  const SLOTS = ["A", "B"];
  const $ = (id) => document.getElementById(id);

  function create({ root, toData, toScreen, points, changed, drawOverlay }) {
    const toolButtons = { pan: $("map-tool-pan"), lasso: $("map-tool-lasso"), box: $("map-tool-box") };
    const slotButtons = { A: $("map-slot-A"), B: $("map-slot-B") };
    const clearButtons = { A: $("map-clear-A"), B: $("map-clear-B") };
    const counts = { A: $("map-count-A"), B: $("map-count-B") };
    const slots = { A: null, B: null }; // {polygon, rows, indices}
    let tool = "pan";
    let slot = "A";
    let path = null; // CSS px [x, y] of the polygon being drawn
    let marks = null;

    function setTool(name) {
      tool = name;
      for (const [key, b] of Object.entries(toolButtons)) {
        b.setAttribute("aria-pressed", String(key === name));
      }
      root.querySelector(".map-frame").dataset.tool = name;
    }
    function setSlot(name) {
      slot = name;
      for (const [key, b] of Object.entries(slotButtons)) {
        b.setAttribute("aria-pressed", String(key === name));
      }
    }
    for (const [key, b] of Object.entries(toolButtons)) b.addEventListener("click", () => setTool(key));
    for (const [key, b] of Object.entries(slotButtons)) b.addEventListener("click", () => setSlot(key));
    for (const [key, b] of Object.entries(clearButtons)) b.addEventListener("click", () => clear(key));
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && path) cancel();
    });

    // each point's mark: 1 in A, 2 in B, 3 in both; null while nothing is selected
    function remark() {
      const { n } = points();
      if (!slots.A && !slots.B) {
        marks = null;
        return;
      }
      marks = new Uint8Array(n);
      SLOTS.forEach((s, bit) => {
        if (!slots[s]) return;
        for (const r of slots[s].rows) marks[r] |= 1 << bit;
      });
    }

    function announce(name) {
      const s = slots[name];
      const detail = s
        ? { slot: name, polygon: s.polygon, rows: s.rows, indices: s.indices }
        : { slot: name, polygon: [], rows: new Uint32Array(0), indices: new Uint32Array(0) };
      counts[name].textContent = s ? `${s.rows.length.toLocaleString("en")} points` : "empty";
      clearButtons[name].disabled = !s;
      root.dispatchEvent(new CustomEvent("map:selection", { detail }));
    }

    // The points inside `polygon` (data coordinates) into `name`, and the event.
    function select(name, polygon) {
      if (!SLOTS.includes(name)) throw new Error(`no slot ${name}: A or B`);
      const { xy, indices } = points();
      const copy = polygon.map(([x, y]) => [Number(x), Number(y)]);
      const rows = window.latentMapIndex.within(xy, copy);
      slots[name] = { polygon: copy, rows, indices: Uint32Array.from(rows, (r) => indices[r]) };
      remark();
      changed();
      announce(name);
      return slots[name];
    }
    function clear(name) {
      slots[name] = null;
      remark();
      changed();
      announce(name);
    }
    // a new map: its rows are other points, so both slots empty
    function reset() {
      for (const name of SLOTS) {
        if (slots[name]) clear(name);
      }
      setSlot("A");
    }

    function start(at) {
      path = [at];
    }
    function extend(at) {
      if (tool === "box") {
        path = [path[0], at];
      } else {
        const last = path[path.length - 1];
        if ((at[0] - last[0]) ** 2 + (at[1] - last[1]) ** 2 >= 4) path.push(at);
      }
      drawOverlay();
    }
    function finish(at) {
      extend(at);
      const drawn = polygonOf(path);
      path = null;
      if (drawn.length >= 3) {
        const name = slot;
        select(name, drawn.map(toData));
        if (name === "A" && !slots.B) setSlot("B");
      } else {
        drawOverlay();
      }
    }
    function cancel() {
      path = null;
      drawOverlay();
    }
    // the box's two corners as its four; the lasso as drawn
    function polygonOf(p) {
      if (tool !== "box") return p;
      if (p.length < 2) return [];
      const [[x0, y0], [x1, y1]] = p;
      if (x0 === x1 || y0 === y1) return [];
      return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
    }

    function trace(g, pts, close) {
      g.beginPath();
      pts.forEach(([x, y], j) => (j ? g.lineTo(x, y) : g.moveTo(x, y)));
      if (close) g.closePath();
    }
    function drawOn(g, colours) {
      g.lineWidth = 1.5;
      for (const name of SLOTS) {
        if (!slots[name]) continue;
        const pts = slots[name].polygon.map(([x, y]) => toScreen(x, y));
        trace(g, pts, true);
        g.strokeStyle = colours[name];
        g.setLineDash([]);
        g.stroke();
        const [x, y] = pts[0];
        g.fillStyle = colours[name];
        g.font = "600 12px system-ui, sans-serif";
        g.fillText(name, x + 4, y - 4);
      }
      if (path) {
        trace(g, polygonOf(path).length ? polygonOf(path) : path, tool === "box");
        g.strokeStyle = colours[slot];
        g.setLineDash([4, 3]);
        g.stroke();
        g.setLineDash([]);
      }
    }

    setTool("pan");
    setSlot("A");
    return {
      tool: () => tool,
      drawing: () => path !== null,
      marks: () => marks,
      start, extend, finish, cancel, select, clear, reset, drawOn,
    };
  }

  window.latentMapTools = { create };
})();
