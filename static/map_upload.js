// Place an image of your own on the latent map (/map): the file is encoded by the model (POST
// /api/models/{name}/encode, fitted to its input as the explore page's upload is) and its μ
// goes to the explorer (`latent:set`), so the picture shows its reconstruction and the marker
// lands where the layout puts that z: PCA's projection, t-SNE's or UMAP's own transform (GET
// marker.place, static/map.js), or the nearest images' mean where the layout has none.
"use strict";

(() => {
  const root = document.getElementById("explorer");
  const form = document.getElementById("map-upload");
  if (!root || !form) return;
  const input = form.querySelector('input[type="file"]');
  const status = document.getElementById("map-upload-status");
  const api = `/api/models/${encodeURIComponent(root.dataset.model)}/encode`;

  async function place(file) {
    const body = new FormData();
    body.append("file", file);
    if (root.dataset.label !== "") body.append("label", root.dataset.label);
    status.textContent = `encoding ${file.name}…`;
    const resp = await fetch(api, { method: "POST", body });
    const answer = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      status.textContent = answer.detail || `the server said ${resp.status}`;
      return;
    }
    form.dataset.mu = answer.mu.join(",");
    root.dispatchEvent(new CustomEvent("latent:set", { detail: { z: answer.mu, live: false } }));
    status.textContent = `${file.name}: its μ is in the sliders, and the ringed cross marks it on the map`;
  }
  input.addEventListener("change", () => {
    if (input.files.length) place(input.files[0]);
  });
  form.addEventListener("submit", (ev) => ev.preventDefault());
})();
