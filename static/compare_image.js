// /compare by one image (templates/compare_image.html): each model is its own explorer
// (static/explore.js, or static/spatial.js for a spatial latent); this script gives them the same
// picture. A dataset image of either model (GET /ui/{name}/encode-picture) or an upload (POST
// /ui/{name}/encode) is encoded by every model, fitted to its input; each answer (its
// reconstruction, −ELBO terms, KL per latent) replaces that model's encoding below its explorer,
// and `latent:encoded` moves the explorer's sliders to its μ.
"use strict";

(() => {
  const page = document.getElementById("compare-image");
  if (!page) return;
  const panels = Array.from(page.querySelectorAll(".explorer-panel"));
  const errorBox = document.getElementById("picture-error");
  const pictureLine = document.getElementById("picture-line");

  function showError(message) {
    errorBox.hidden = !message;
    errorBox.textContent = message || "";
  }

  // `ask(panel)` → the fetch of that model's encoding (an HTML fragment, a 422 saying why not)
  async function encodeAll(ask) {
    showError(null);
    await Promise.all(
      panels.map(async (panel) => {
        const target = panel.querySelector(".encode-result");
        try {
          const resp = await ask(panel);
          target.innerHTML = await resp.text();
        } catch (err) {
          target.innerHTML = "";
          showError(`${panel.dataset.model}: ${err.message}`);
          return;
        }
        const enc = target.querySelector(".encoding[data-mu]");
        if (!enc) return; // the fragment says why this model could not encode it
        const detail = { mu: JSON.parse(enc.dataset.mu), label: enc.dataset.label };
        panel.dispatchEvent(new CustomEvent("latent:encoded", { detail }));
      }),
    );
  }

  // the picture goes in the URL (each explorer adds its own z after it moves)
  function setUrl(source, index) {
    const params = new URLSearchParams(location.search);
    for (const key of ["source", "index", "za", "zb", "labela", "labelb"]) params.delete(key);
    if (source) {
      params.set("source", source);
      params.set("index", String(index));
    }
    history.replaceState(null, "", `${location.pathname}?${params}`);
  }

  const select = document.getElementById("image-source");
  const random = document.getElementById("random-image");
  if (select && random) {
    random.addEventListener("click", () => {
      const option = select.selectedOptions[0];
      const source = option.value;
      const index = Math.floor(Math.random() * Number(option.dataset.images));
      setUrl(source, index);
      page.dataset.source = source;
      page.dataset.index = String(index);
      if (pictureLine) pictureLine.textContent = `The picture: ${source}'s image ${index.toLocaleString("en")}.`;
      encodeAll((panel) => {
        const q = new URLSearchParams({ source, index: String(index) });
        // a CVAE given another model's image keeps the class it shows
        if (panel.dataset.label) q.set("label", panel.dataset.label);
        return fetch(`/ui/${encodeURIComponent(panel.dataset.model)}/encode-picture?${q}`);
      });
    });
  }

  const file = document.getElementById("compare-upload-file");
  function upload(files) {
    if (!files.length) return;
    setUrl(null);
    if (pictureLine) pictureLine.textContent = `The picture: ${files[0].name}, uploaded.`;
    encodeAll((panel) => {
      const form = new FormData();
      form.append("file", files[0]);
      if (panel.dataset.label) form.append("label", panel.dataset.label);
      return fetch(`/ui/${encodeURIComponent(panel.dataset.model)}/encode`, { method: "POST", body: form });
    });
  }
  file.addEventListener("change", () => upload(file.files));
  window.latentDropzone(document.getElementById("compare-dropzone"), upload);
})();
