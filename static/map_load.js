// The latent map's points fetched for static/map.js (window.latentMapLoad.fetchMap): the
// binary form (GET /api/models/{name}/map.bin, read in place as typed arrays by
// static/map_binary.js), or the JSON form where a server has no binary one, both turned into
// the one shape the page reads.
"use strict";

(() => {
  // The map as the page reads it, from either form: the header's fields, `xy` (Float32Array
  // 2n), `indices` (Uint32Array), `latents` and `prior_z` (Float32Array n·D or null), each
  // colour_by entry with `values` (a typed array) and `missing` (its code for no value, or null
  // for numbers, NaN being none).
  function fromBinary(header, arrays) {
    const out = { ...header, xy: arrays.points, indices: arrays.indices };
    out.latents = arrays.latents || null;
    out.prior_z = arrays.prior_z || null;
    out.colour_by = header.colour_by.map((c) => ({ ...c, values: arrays[c.array] }));
    return out;
  }
  function fromJson(body, D) {
    const count = body.points.length;
    const flat = (rows) => {
      if (!rows) return null;
      const a = new Float32Array(count * D);
      rows.forEach((row, i) => a.set(row, i * D));
      return a;
    };
    const pts = new Float32Array(2 * count);
    body.points.forEach(([x, y], i) => {
      pts[2 * i] = x;
      pts[2 * i + 1] = y;
    });
    const colours = body.colour_by.map((c) =>
      c.kind === "ordered"
        ? { ...c, values: Float32Array.from(c.values, (v) => (v === null ? NaN : v)), missing: null }
        : { ...c, values: Int32Array.from(c.values), missing: -1 },
    );
    return {
      ...body, xy: pts, indices: Uint32Array.from(body.indices), latents: flat(body.latents),
      prior_z: flat(body.prior_z), colour_by: colours,
    };
  }

  // Asks for the map of `query` ({n, method}) at `binaryUrl` (else `jsonUrl`, a server without
  // the binary form: 404 or 405 for the route itself); D latents. Answers {status, map} (200),
  // {status, detail, wait} (202: s to wait) or {status, detail} (an error), and writes into
  // `load` how it went: {format, bytes, fetchMs, bytesAt, decodeMs} (firstPaintMs is the
  // page's, after `bytesAt`).
  async function fetchMap(binaryUrl, jsonUrl, query, D, load) {
    const t0 = performance.now();
    const ask = (base) => {
      const url = new URL(base, location.href); // may carry ?data=NAME
      for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
      return fetch(url);
    };
    try {
      let resp = await ask(binaryUrl);
      if (resp.status === 404 || resp.status === 405) {
        const why = await resp.clone().json().catch(() => ({}));
        if (why.detail === "Not Found" || why.detail === "Method Not Allowed") {
          resp = await ask(jsonUrl);
        }
      }
      const arrived = (format, bytes) => {
        for (const key of Object.keys(load)) delete load[key];
        Object.assign(load, { format, bytes, fetchMs: performance.now() - t0 });
        load.bytesAt = performance.now();
      };
      if (resp.status === 200 && !/json/.test(resp.headers.get("content-type"))) {
        const bytes = await resp.arrayBuffer();
        arrived("binary", bytes.byteLength);
        const { header, arrays } = window.latentMapBinary.decode(bytes);
        const map = fromBinary(header, arrays);
        load.decodeMs = performance.now() - load.bytesAt;
        return { status: 200, map };
      }
      const text = await resp.text();
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        body = { detail: resp.statusText };
      }
      if (resp.status === 200) {
        arrived("json", text.length);
        const map = fromJson(body, D);
        load.decodeMs = performance.now() - load.bytesAt;
        return { status: 200, map };
      }
      if (resp.status === 202) {
        const wait = Number(resp.headers.get("Retry-After")) || body.retry_after || 5;
        return { status: 202, detail: body.detail, wait };
      }
      return { status: resp.status, detail: body.detail };
    } catch (err) {
      return { status: 0, detail: err.message };
    }
  }

  window.latentMapLoad = { fetchMap, fromBinary, fromJson };
})();
