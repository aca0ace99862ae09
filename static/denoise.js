// Denoise page: paint a mask over the clean image. The mask, one bit per pixel of the image the
// models take (64×64 for dSprites, 28×28 for Fashion-MNIST), goes into the form's hidden
// `mask` field as hex (row-major, most significant bit first: what app/denoise.parse_mask reads),
// the noise switches to "drawn", and a `mask-drawn` event makes htmx send the form.
"use strict";

(() => {
  const canvas = document.getElementById("mask-canvas");
  const form = document.getElementById("denoise-form");
  if (!canvas || !form) return;
  let N = 64; // the clean image's side, once it has loaded
  let cell = canvas.width / N;
  const ctx = canvas.getContext("2d");
  let mask = new Uint8Array(N * N);
  const field = document.getElementById("mask");
  const noise = document.getElementById("noise");
  const level = document.getElementById("level");
  const levelValue = document.getElementById("level-value");
  const image = new Image();
  let painting = false;

  function draw() {
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (image.complete && image.naturalWidth) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "rgba(128, 128, 128, 0.85)";
    for (let i = 0; i < N * N; i++) {
      if (mask[i]) ctx.fillRect((i % N) * cell, Math.floor(i / N) * cell, cell, cell);
    }
  }

  function loadClean() {
    const grid = document.querySelector(".denoise-grid");
    if (grid && grid.dataset.clean && image.src !== grid.dataset.clean) image.src = grid.dataset.clean;
  }
  image.addEventListener("load", () => {
    if (image.naturalWidth && image.naturalWidth !== N) {
      N = image.naturalWidth; // another model's images: a new mask of their size
      cell = canvas.width / N;
      mask = new Uint8Array(N * N);
      field.value = "";
    }
    draw();
  });

  function paintAt(event) {
    const box = canvas.getBoundingClientRect();
    const cx = Math.floor(((event.clientX - box.left) / box.width) * N);
    const cy = Math.floor(((event.clientY - box.top) / box.height) * N);
    const r = Math.max(1, Math.round((3 * N) / 64)); // brush radius in cells: 3 at 64×64
    for (let y = cy - r; y <= cy + r; y++) {
      for (let x = cx - r; x <= cx + r; x++) {
        if (x >= 0 && y >= 0 && x < N && y < N && (x - cx) ** 2 + (y - cy) ** 2 <= r * r) mask[y * N + x] = 1;
      }
    }
    draw();
  }

  function hex() {
    let out = "";
    for (let i = 0; i < N * N; i += 4) {
      out += ((mask[i] << 3) | (mask[i + 1] << 2) | (mask[i + 2] << 1) | mask[i + 3]).toString(16);
    }
    return out;
  }

  function send() {
    field.value = hex();
    noise.value = "drawn";
    htmx.trigger(form, "mask-drawn");
  }

  canvas.addEventListener("pointerdown", (e) => {
    painting = true;
    canvas.setPointerCapture(e.pointerId);
    paintAt(e);
  });
  canvas.addEventListener("pointermove", (e) => painting && paintAt(e));
  canvas.addEventListener("pointerup", () => {
    if (!painting) return;
    painting = false;
    send();
  });
  document.getElementById("clear-mask").addEventListener("click", () => {
    mask.fill(0);
    field.value = "";
    if (noise.value === "drawn") noise.value = "gaussian";
    draw();
    htmx.trigger(form, "change");
  });
  level.addEventListener("input", () => (levelValue.value = level.value));
  // each noise has its own range (app/data/corruption.py MAX_LEVEL); this runs before htmx sends
  const maxLevels = JSON.parse(level.dataset.maxLevels);
  noise.addEventListener("change", () => {
    level.max = String(maxLevels[noise.value] ?? 0);
    if (Number(level.value) > Number(level.max)) level.value = level.max;
    levelValue.value = level.value;
  });
  // the mask stays with the picture it was painted on: a new image or model clears it
  form.addEventListener("change", (e) => {
    if (["index", "denoise-file", "model-a", "model-b"].includes(e.target.id)) {
      mask.fill(0);
      field.value = "";
      if (noise.value === "drawn") noise.value = "gaussian";
    }
  });
  document.body.addEventListener("htmx:afterSwap", loadClean);
  loadClean();
})();
