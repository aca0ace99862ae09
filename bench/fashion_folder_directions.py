"""Fashion-MNIST's real test split as a folder of PNGs against the built-in route, with the
shipped Fashion models: all 10,000 test images exported (examples/export_fashion_test.py) to a
temporary folder served as data set fashion-test, encoded once in the background, then per model

    μ          the largest |Δμ| between the set's kept encoding and the encoder on the split
    classes    points of the map (data=fashion-test, all 10,000) whose class is not the split's
    direction  sneaker → ankle boot, default sample (5,000 of the 10,000, seed 0), built-in
               (no data) and on the folder: held-out accuracy, images held out, chance,
               participation ratio, the largest |Δ| of the vectors

and how long the export and the encoding took. Needs Debian's dataset-fashion-mnist.

Measured 2026-12-06 on the 2-core machine (export 2.4 s; the three encodings 6.5 s): for
fashion-vae, fashion-beta-vae and fashion-cvae the map's 10,000 classes are the split's, μ
agrees to 1e-6 (float32 rounding) and the direction is the built-in one to every digit it is
sent with: fashion-vae accuracy 0.9185 of 184 held out (chance 0.5109), participation ratio
3.341; fashion-beta-vae 0.9185, 1.274; fashion-cvae 0.5000, 2.990 (its encoder is given the
class, so μ need not carry it).

    python bench/fashion_folder_directions.py [NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient  # noqa: E402

from app import inference  # noqa: E402
from app.data.fashion_mnist import DEFAULT_ROOT  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import PROJECT_ROOT, Settings  # noqa: E402
from app.studies.set_encodings import encoding_jobs, kept_encoding  # noqa: E402
from examples.export_fashion_test import main as export_fashion_test  # noqa: E402

SET = "fashion-test"
DEFAULT = ("fashion-vae", "fashion-beta-vae", "fashion-cvae")


def encoder_mu(client: TestClient, name: str) -> np.ndarray:
    """(10,000, D) the model's μ of the split as the built-in route encodes it."""
    model = client.app.state.registry[name]
    images = inference.dataset_images_of(model, DEFAULT_ROOT)
    assert isinstance(images, inference.TestImages)
    x = torch.from_numpy(images.split.images.astype(np.float32) / np.float32(255))
    labels = torch.from_numpy(images.split.labels.astype(np.int64))
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), 1000):
            lab = labels[i : i + 1000] if model.description.kind == "cvae" else None
            out.append(model.model.encode(x[i : i + 1000], lab).mean.double().numpy())
    return np.concatenate(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=list(DEFAULT))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        export_fashion_test(["--out", str(root / "datasets" / SET)])
        exported = time.perf_counter() - t
        settings = Settings(checkpoints_dir=PROJECT_ROOT / "checkpoints",
                            datasets_dir=root / "datasets", cache_dir=root / "cache")  # fmt: skip
        with TestClient(create_app(settings), base_url="http://localhost") as client:
            t = time.perf_counter()
            for name in args.models:
                assert client.get(f"/api/models/{name}/map?data={SET}").status_code == 202
            encoding_jobs(settings.cache_dir).join()
            encoded = time.perf_counter() - t
            print(f"export {exported:.1f} s; {len(args.models)} encodings {encoded:.1f} s")  # noqa: T201
            image_set = client.app.state.datasets[SET]
            for name in args.models:
                model = client.app.state.registry[name]
                enc = kept_encoding(model, image_set, settings.cache_dir)
                assert enc is not None
                gap = np.abs(enc.mu.astype(np.float64) - encoder_mu(client, name)).max()
                m = client.get(f"/api/models/{name}/map?data={SET}&n=10000").json()
                split = inference.dataset_images_of(model, DEFAULT_ROOT).split  # type: ignore[union-attr]
                wrong = int(
                    (np.array(m["colour_by"][0]["values"]) != split.labels[m["indices"]]).sum()
                )
                query = "from=sneaker&to=ankle%20boot"
                own = client.get(f"/api/models/{name}/direction?{query}").json()
                folder = client.get(f"/api/models/{name}/direction?{query}&data={SET}").json()
                dv = np.abs(np.array(own["vector"]) - np.array(folder["vector"])).max()
                for label, d in (("built-in", own), ("folder", folder)):
                    f = d["fit"]
                    print(  # noqa: T201
                        f"{name} {label}: accuracy {f['value']:.4f} of {f['held_out']} held out "
                        f"(chance {f['chance']:.4f}), participation ratio "
                        f"{d['participation_ratio']:.3f}, n {d['n']}"
                    )
                print(  # noqa: T201
                    f"{name}: max |Δμ| {gap:.2e}; map points of another class {wrong}; "
                    f"max |Δvector| {dv:.2e}"
                )


if __name__ == "__main__":
    main()
