// The latent map's points on the GPU (WebGL2), for static/map.js through window.latentMapGL.
//
// Why not redraw every point on every frame: headless Chromium on a CPU (WebGL2 through ANGLE on
// SwiftShader) rasterises a point in about 0.35 µs, so 737,280 of them take 250–330 ms a frame.
// So the points are drawn into an offscreen texture (a "layer") for one view; a frame of a pan
// or zoom draws that layer moved and scaled (one triangle over the canvas), and the points are
// drawn again for the new view into a second layer, a chunk per frame sized to the time the
// last chunks took, which is swapped in once complete. Where the whole draw is cheap (a real
// GPU, or few points) the chunk is every point, and each frame is drawn exactly.
//
// A view maps data (x, y) to CSS px as (x·k + tx, ty − y·k), as in static/map_draw.js.
"use strict";

(() => {
  // Each point's colour comes as four bytes (r, g, b, and its selection mark in the fourth),
  // not a palette lookup: a texture fetch per vertex costs SwiftShader more than 4 bytes.
  const POINT_VS = `#version 300 es
    in vec2 xy;
    in vec4 colourMark;     // r, g, b in 0..1; the mark (0: not selected) × 1/255
    uniform vec3 view;      // k, tx, ty (CSS px)
    uniform vec2 side;      // the canvas, CSS px
    uniform float size;     // a dot's diameter, device px
    uniform bool anyMarked; // a selection pales every point outside it
    out vec3 colour;
    void main() {
      vec2 s = vec2(xy.x * view.x + view.y, view.z - xy.y * view.x);
      bool marked = colourMark.a > 0.0;
      // marked points in front: the depth test keeps them over the paled rest
      float depth = marked ? -0.5 : 0.5;
      gl_Position = vec4(2.0 * s.x / side.x - 1.0, 1.0 - 2.0 * s.y / side.y, depth, 1.0);
      gl_PointSize = size;
      colour = anyMarked && !marked ? mix(colourMark.rgb, vec3(1.0), 0.82) : colourMark.rgb;
    }`;
  const POINT_FS = `#version 300 es
    precision highp float;
    in vec3 colour;
    uniform float size;
    uniform bool round;
    out vec4 frag;
    void main() {
      // a round dot: the pixels whose centre lies within its radius (as the 2-D path's stamp);
      // below 4 px that is the whole square, and discard (which slows SwiftShader) is skipped
      if (round) {
        vec2 d = (gl_PointCoord - 0.5) * size;
        if (dot(d, d) > 0.25 * size * size + 0.5) discard;
      }
      frag = vec4(colour, 1.0);
    }`;
  // one triangle over the whole canvas; the fragment looks up where its pixel was in the layer
  const LAYER_VS = `#version 300 es
    void main() {
      vec2 p = vec2(float((gl_VertexID & 1) << 2) - 1.0, float((gl_VertexID & 2) << 1) - 1.0);
      gl_Position = vec4(p, 0.0, 1.0);
    }`;
  const LAYER_FS = `#version 300 es
    precision highp float;
    uniform sampler2D layer;
    uniform vec4 move;      // CSS px in the layer = (s − t)·f + t0: f, tx·f − tx0, ty·f − ty0, dpr
    uniform vec2 side;      // CSS px
    uniform vec3 background;
    out vec4 frag;
    void main() {
      vec2 s = vec2(gl_FragCoord.x / move.w, side.y - gl_FragCoord.y / move.w);
      vec2 s0 = s * move.x - move.yz;
      vec2 uv = vec2(s0.x / side.x, 1.0 - s0.y / side.y);
      if (any(lessThan(uv, vec2(0.0))) || any(greaterThan(uv, vec2(1.0)))) {
        frag = vec4(background, 1.0);
      } else {
        frag = vec4(texture(layer, uv).rgb, 1.0);
      }
    }`;
  // a density image (one texel a cell) stretched over a layer
  const IMAGE_FS = `#version 300 es
    precision highp float;
    uniform sampler2D image;
    uniform vec2 pixels;    // the layer, device px
    out vec4 frag;
    void main() {
      frag = vec4(texture(image, gl_FragCoord.xy / pixels).rgb, 1.0);
    }`;

  function compile(gl, vs, fs) {
    const program = gl.createProgram();
    for (const [type, text] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
      const s = gl.createShader(type);
      gl.shaderSource(s, text);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      gl.attachShader(program, s);
    }
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(gl.getProgramInfoLog(program));
    }
    const u = {};
    const count = gl.getProgramParameter(program, gl.ACTIVE_UNIFORMS);
    for (let j = 0; j < count; j++) {
      const name = gl.getActiveUniform(program, j).name;
      u[name] = gl.getUniformLocation(program, name);
    }
    return { program, u };
  }

  const sameView = (a, b) => a && b && a.k === b.k && a.tx === b.tx && a.ty === b.ty;

  // A renderer on `canvas`, or null where WebGL2 is not to be had.
  function create(canvas, { background = [255, 255, 255], onFrame = () => {} } = {}) {
    const gl = canvas.getContext("webgl2", {
      alpha: false,
      antialias: false,
      depth: false,
      // the exports and the tests read the canvas back after the frame that drew it
      preserveDrawingBuffer: true,
    });
    if (!gl) return null;
    const points = compile(gl, POINT_VS, POINT_FS);
    const layerProgram = compile(gl, LAYER_VS, LAYER_FS);
    const imageProgram = compile(gl, LAYER_VS, IMAGE_FS);
    const bg = background.map((v) => v / 255);

    const vao = gl.createVertexArray();
    const xyBuffer = gl.createBuffer();
    const colourBuffer = gl.createBuffer();
    gl.bindVertexArray(vao);
    const attr = (name) => gl.getAttribLocation(points.program, name);
    gl.bindBuffer(gl.ARRAY_BUFFER, xyBuffer);
    gl.enableVertexAttribArray(attr("xy"));
    gl.vertexAttribPointer(attr("xy"), 2, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, colourBuffer);
    gl.enableVertexAttribArray(attr("colourMark"));
    gl.vertexAttribPointer(attr("colourMark"), 4, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.bindVertexArray(null);
    const emptyVao = gl.createVertexArray();

    const imageTexture = gl.createTexture();
    const texture = (t, filter) => {
      gl.bindTexture(gl.TEXTURE_2D, t);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) {
        gl.texParameteri(gl.TEXTURE_2D, p, filter);
      }
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    };
    texture(imageTexture, gl.NEAREST);

    // two layers: `front` holds the points drawn for `front.view`, `back` is being drawn
    function makeLayer() {
      const t = gl.createTexture();
      texture(t, gl.LINEAR);
      const fb = gl.createFramebuffer();
      const depth = gl.createRenderbuffer();
      return { t, fb, depth, view: null, w: 0, h: 0 };
    }
    let front = makeLayer();
    let back = makeLayer();
    function sizeLayer(l, w, h) {
      if (l.w === w && l.h === h) return;
      gl.bindTexture(gl.TEXTURE_2D, l.t);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
      gl.bindRenderbuffer(gl.RENDERBUFFER, l.depth);
      gl.renderbufferStorage(gl.RENDERBUFFER, gl.DEPTH_COMPONENT16, w, h);
      gl.bindFramebuffer(gl.FRAMEBUFFER, l.fb);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, l.t, 0);
      gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.DEPTH_ATTACHMENT, gl.RENDERBUFFER, l.depth);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      Object.assign(l, { w, h, view: null });
    }

    let n = 0;
    let anyMarked = false;
    let dotPx = 3; // device px
    let density = null; // {image: Uint8Array RGBA, cols, rows} for the view it was made for
    let densityFor = null; // () => density image for a view, while the density view is on
    let view = null; // wanted: {k, tx, ty}
    let css = [1, 1];
    let dpr = 1;
    let job = null; // {view, next}: points drawn into `back` so far
    let usPerPoint = 0.35e-3; // ms a point, measured as chunks are drawn (starting guess)
    const FRAME_BUDGET = 8; // ms of drawing a frame may take, of ~16.7
    const DIRECT = 4; // ms: a full draw this cheap is done on every frame of a pan or zoom
    const STILL = 6; // frames (100 ms at 60 Hz) the view holds before its points are drawn
    let frameAsked = false;
    let lastFrame = null;
    const probe = new Uint8Array(4);
    let still = 0; // frames since the view last moved

    function setSize(cssW, cssH, ratio, dotCss) {
      css = [cssW, cssH];
      dpr = ratio;
      dotPx = 2 * dotCss * ratio;
      sizeLayer(front, canvas.width, canvas.height);
      sizeLayer(back, canvas.width, canvas.height);
      invalidate();
    }
    let keys = null;
    let palette = [];
    let marks = null;
    let colours = null; // Uint8Array(4n): r, g, b, mark
    // The points go to the GPU in the order of the hover index's cells (latentMapIndex.grid:
    // row by row of cells), so a view that shows part of the map draws only the runs of cells
    // it shows: zoomed in 4×, about a sixteenth of the points.
    let cells = null; // the grid: {x0, y0, cell, cols, starts}
    let order = null; // the rows in the order they are drawn
    function setPoints(xy, grid) {
      n = xy.length / 2;
      cells = grid;
      order = shuffledWithinCells(grid);
      const sorted = new Float32Array(2 * n);
      const items = order;
      for (let j = 0; j < n; j++) {
        sorted[2 * j] = xy[2 * items[j]];
        sorted[2 * j + 1] = xy[2 * items[j] + 1];
      }
      gl.bindBuffer(gl.ARRAY_BUFFER, xyBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, sorted, gl.STATIC_DRAW);
      colours = new Uint8Array(4 * n);
      keys = null;
      marks = null;
    }
    // The grid's rows, each cell's in a shuffled order (a fixed seed: the same map draws the
    // same picture). Where points overlap, the one drawn last shows; in the rows' own order
    // that is whichever category a data set lists last (all of dSprites' hearts come after its
    // squares), in a shuffled order each category shows as often as it is there.
    function shuffledWithinCells(grid) {
      const out = Uint32Array.from(grid.items);
      let state = 0x9e3779b9;
      const random = () => {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        return (state >>> 0) / 4294967296;
      };
      const { starts } = grid;
      for (let c = 0; c + 1 < starts.length; c++) {
        for (let j = starts[c + 1] - 1; j > starts[c]; j--) {
          const k = starts[c] + Math.floor(random() * (j - starts[c] + 1));
          const t = out[j];
          out[j] = out[k];
          out[k] = t;
        }
      }
      return out;
    }

    // The runs [from, to) of the sorted points in the cells a view shows (a dot's radius
    // beyond the canvas included), adjoining runs joined.
    function runsFor(v) {
      const { x0, y0, cell, cols, starts } = cells;
      const r = dotPx / dpr;
      const clampCell = (t) => Math.max(0, Math.min(cols - 1, Math.floor(t)));
      const ax = (-r - v.tx) / v.k;
      const bx = (css[0] + r - v.tx) / v.k;
      const ay = (v.ty - css[1] - r) / v.k;
      const by = (v.ty + r) / v.k;
      const span = cell * cols;
      if (bx < x0 || by < y0 || ax > x0 + span || ay > y0 + span) return [];
      const cx0 = clampCell((ax - x0) / cell);
      const cx1 = clampCell((bx - x0) / cell);
      const cy0 = clampCell((ay - y0) / cell);
      const cy1 = clampCell((by - y0) / cell);
      const runs = [];
      for (let cy = cy0; cy <= cy1; cy++) {
        const from = starts[cy * cols + cx0];
        const to = starts[cy * cols + cx1 + 1];
        if (to === from) continue;
        const last = runs[runs.length - 1];
        if (last && last[1] === from) last[1] = to;
        else runs.push([from, to]);
      }
      return runs;
    }
    // keys: Uint16Array(n) into palette, a list of [r, g, b]
    function setColours(k, p) {
      keys = k;
      palette = p;
      upload();
    }
    // marks: Uint8Array(n), non-zero for a selected point, or null for no selection
    function setMarks(m) {
      marks = m;
      upload();
    }
    function upload() {
      if (!keys) return;
      const packed = new Uint32Array(colours.buffer);
      const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
      const words = Uint32Array.from(palette, ([r, g, b]) =>
        little ? (b << 16) | (g << 8) | r : ((r << 24) | (g << 16) | (b << 8)) >>> 0);
      const markShift = little ? 24 : 0;
      const items = order;
      for (let j = 0; j < n; j++) {
        const i = items[j];
        const mark = marks && marks[i] ? 1 : 0;
        packed[j] = (words[keys[i]] | (mark << markShift)) >>> 0;
      }
      anyMarked = marks !== null;
      gl.bindBuffer(gl.ARRAY_BUFFER, colourBuffer);
      gl.bufferData(gl.ARRAY_BUFFER, colours, gl.STATIC_DRAW);
      invalidate();
    }
    // f(view, cols, rows) → RGBA bytes of cols×rows cells, or null for the points themselves
    function setDensity(f) {
      densityFor = f;
      invalidate();
    }
    function setView(v) {
      view = { ...v };
      ask();
    }
    // the layers no longer show what is asked: both are drawn again (the front is kept on
    // screen, moved, until the back is complete)
    function invalidate() {
      back.view = null;
      job = null;
      if (front.view) front.stale = true;
      ask();
    }

    function ask() {
      if (frameAsked) return;
      frameAsked = true;
      requestAnimationFrame(frame);
    }

    // Draws points [from, to) into the bound framebuffer for `v`.
    function drawPoints(v, runs) {
      gl.useProgram(points.program);
      gl.uniform3f(points.u.view, v.k, v.tx, v.ty);
      gl.uniform2f(points.u.side, css[0], css[1]);
      gl.uniform1f(points.u.size, dotPx);
      gl.uniform1i(points.u.round, dotPx >= 4 ? 1 : 0);
      gl.uniform1i(points.u.anyMarked, anyMarked ? 1 : 0);
      gl.bindVertexArray(vao);
      if (anyMarked) {
        gl.enable(gl.DEPTH_TEST);
        gl.depthFunc(gl.LEQUAL); // of the same depth, the later drawn over the earlier
      }
      for (const [from, to] of runs) gl.drawArrays(gl.POINTS, from, to - from);
      gl.disable(gl.DEPTH_TEST);
      gl.bindVertexArray(null);
    }

    function drawDensity(v) {
      const cell = 2; // device px a cell: a dot's size
      const cols = Math.ceil(back.w / cell);
      const rows = Math.ceil(back.h / cell);
      const image = densityFor(v, cols, rows, cell / dpr);
      gl.bindTexture(gl.TEXTURE_2D, imageTexture);
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, cols, rows, 0, gl.RGBA, gl.UNSIGNED_BYTE, image);
      gl.useProgram(imageProgram.program);
      gl.activeTexture(gl.TEXTURE0);
      gl.uniform1i(imageProgram.u.image, 0);
      gl.uniform2f(imageProgram.u.pixels, cols * cell, rows * cell);
      gl.bindVertexArray(emptyVao);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }

    // The part [from, to) of the points along `runs`, as runs.
    function slice(runs, from, to) {
      const out = [];
      let at = 0;
      for (const [a, b] of runs) {
        const lo = Math.max(a, a + from - at);
        const hi = Math.min(b, a + to - at);
        if (hi > lo) out.push([lo, hi]);
        at += b - a;
        if (at >= to) break;
      }
      return out;
    }

    // The front layer drawn onto the canvas, moved from its view to the wanted one.
    function present() {
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.viewport(0, 0, canvas.width, canvas.height);
      const from = front.view;
      if (!from) {
        gl.clearColor(bg[0], bg[1], bg[2], 1);
        gl.clear(gl.COLOR_BUFFER_BIT);
        return;
      }
      const f = from.k / view.k;
      gl.useProgram(layerProgram.program);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, front.t);
      gl.uniform1i(layerProgram.u.layer, 0);
      // x0 = (x − tx)·f + tx0; y0 = ty0 − (ty − y)·f = (y − ty)·f + ty0
      gl.uniform4f(layerProgram.u.move, f, view.tx * f - from.tx, view.ty * f - from.ty, dpr);
      gl.uniform2f(layerProgram.u.side, css[0], css[1]);
      gl.uniform3f(layerProgram.u.background, bg[0], bg[1], bg[2]);
      gl.bindVertexArray(emptyVao);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }

    // One frame: the front moved to the wanted view; then, if the view held still since the
    // last frame, the next chunk of the back layer, swapped in when complete.
    function frame(time) {
      frameAsked = false;
      if (!view || !n) return;
      const t0 = performance.now();
      const moved = lastFrame && !sameView(lastFrame.view, view);
      // a drag's pointer events and a wheel's steps come a frame or two apart: the points are
      // drawn again once the view has held still for STILL frames, not between two of them
      // (where a chunk's frame would make the next move late)
      still = moved ? 0 : still + 1;
      // gap: since the last frame, where that frame asked for this one (the loop ran on);
      // after a pause with nothing to draw the time between frames is no frame's cost
      const record = {
        t: time, ms: 0, gap: lastFrame && lastFrame.chained ? time - lastFrame.time : null,
        drew: 0, what: "",
      };
      lastFrame = { time, view: { ...view }, chained: false };
      const exact = sameView(front.view, view) && !front.stale;
      if (!exact) {
        if (!job || !sameView(job.view, view)) {
          const runs = densityFor ? [[0, n]] : runsFor(view);
          const total = runs.reduce((sum, [a, b]) => sum + b - a, 0);
          job = { view: { ...view }, runs, total, next: 0, ms: 0 };
        }
        // every point in this frame: the first draw (nothing on screen yet), or a draw cheap
        // enough to fit
        const all = !front.view || densityFor || job.total * usPerPoint <= DIRECT;
        if (all || still >= STILL) {
          gl.bindFramebuffer(gl.FRAMEBUFFER, back.fb);
          gl.viewport(0, 0, back.w, back.h);
          const c0 = performance.now();
          if (job.next === 0) {
            gl.clearColor(bg[0], bg[1], bg[2], 1);
            gl.clearDepth(1);
            gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
          }
          let to;
          if (densityFor) {
            drawDensity(job.view);
            to = job.total;
            record.what = "density";
          } else {
            // the next `budget` of the view's points, counted along its runs
            const budget = Math.max(5_000, Math.floor(FRAME_BUDGET / usPerPoint));
            to = all ? job.total : Math.min(job.total, job.next + budget);
            drawPoints(job.view, slice(job.runs, job.next, to));
            record.what = all ? "points" : "chunk";
          }
          // how long the chunk took on the GPU: reading a pixel back waits for it (finish
          // does not, in Chromium: the GPU runs in another process), so the chunk size tracks
          // what this machine's GPU (or SwiftShader) does in a frame
          gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, probe);
          const ms = performance.now() - c0;
          record.drew = to - job.next;
          if (!densityFor && record.drew >= 5_000) {
            usPerPoint = 0.5 * usPerPoint + 0.5 * (ms / record.drew);
          }
          job.ms += ms;
          job.next = to;
          if (to >= job.total) {
            back.view = job.view;
            back.stale = false;
            [front, back] = [back, front];
            back.view = null;
            record.complete = job.ms;
            job = null;
          }
        } else {
          record.what = "moved";
        }
      } else {
        record.what = "moved";
      }
      present();
      record.ms = performance.now() - t0;
      onFrame(record, front.view && sameView(front.view, view) && !front.stale);
      if (!(sameView(front.view, view) && !front.stale)) {
        lastFrame.chained = true;
        ask();
      }
    }

    // What the renderer knows about this machine's speed, for the page and the bench.
    const info = () => {
      const ext = gl.getExtension("WEBGL_debug_renderer_info");
      return {
        renderer: gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER),
        usPerPoint: usPerPoint * 1000,
        direct: n * usPerPoint <= DIRECT, // at the reset view, where every point shows
      };
    };

    return { gl, setSize, setPoints, setColours, setMarks, setDensity, setView, invalidate, info };
  }

  window.latentMapGL = { create };
})();
