// The latent map's binary form (GET /api/models/{name}/map.bin), read without parsing text:
// the arrays are typed-array views on the response's own bytes, no copy. Layout (little-endian;
// app/web/map_binary.py is the writer and documents it):
//   0..7 "LEMAP001" · 8..11 uint32 header length H · 12..12+H JSON header, space-padded so
//   the arrays start 8-byte aligned · each array at header.arrays[name].offset.
// window.latentMapBinary.decode(arrayBuffer) → {header, arrays: {name: TypedArray}}: the header
// is the JSON form without its long lists; `points` (x, y interleaved), `indices`, `latents`
// (up to 20,000 points), `prior_z`, and one `colour:<name>` per header.colour_by entry.
"use strict";

(() => {
  const MAGIC = "LEMAP001";
  const TYPES = {
    float32: Float32Array,
    uint32: Uint32Array,
    uint16: Uint16Array,
    uint8: Uint8Array,
    int32: Int32Array,
  };

  function decode(buffer) {
    const bytes = new Uint8Array(buffer);
    const magic = String.fromCharCode(...bytes.subarray(0, 8));
    if (magic !== MAGIC) throw new Error(`not a latent map: it starts ${JSON.stringify(magic)}`);
    const size = new DataView(buffer).getUint32(8, true);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + size)));
    const arrays = {};
    for (const [name, spec] of Object.entries(header.arrays)) {
      const Type = TYPES[spec.dtype];
      if (!Type) throw new Error(`array ${name} has an unknown type ${spec.dtype}`);
      const count = spec.shape.reduce((a, b) => a * b, 1);
      arrays[name] = new Type(buffer, spec.offset, count);
    }
    return { header, arrays };
  }

  window.latentMapBinary = { MAGIC, decode };
})();
