"""How much of a class a 2-D map keeps: a 10-nearest-neighbour vote on the map's positions
(5-fold cross-validation) against the same vote on the full μ, for PCA and t-SNE maps of
5,000 held-out images per model, through the API as the page asks for them. Also the t-SNE's
own time (its `settings.seconds`). Prints a Markdown table.

    PYTHONPATH=. python experiments/latent-map/map_neighbours.py [NAME ...]
"""

from __future__ import annotations

import sys

import numpy as np
from fastapi.testclient import TestClient
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from app.main import create_app
from app.settings import Settings
from app.web import latent_map

MODELS = ("fashion-vae", "fashion-beta-vae", "dsprites-vae", "dsprites-beta-vae")
N = 5000


def vote(x: np.ndarray, y: np.ndarray) -> float:
    return float(cross_val_score(KNeighborsClassifier(10), x, y, cv=5).mean())


def main() -> None:
    names = sys.argv[1:] or MODELS
    columns = ("model", "coloured by", "10-NN on μ", "on the PCA map", "on the t-SNE map",
               "PCA variance", "t-SNE time")  # fmt: skip
    print("| " + " | ".join(columns) + " |")  # noqa: T201
    print("|---" * len(columns) + "|")  # noqa: T201
    with TestClient(create_app(Settings()), base_url="http://localhost") as client:
        for name in names:
            url = f"/api/models/{name}/map?n={N}"
            pca = client.get(url).json()
            assert client.get(url + "&method=tsne").status_code in (200, 202)
            latent_map.layout_jobs(None).join()
            tsne = client.get(url + "&method=tsne").json()
            colour = pca["colour_by"][0]
            y = np.array(colour["values"])
            mu = np.array(pca["latents"])
            ratio = sum(pca["settings"]["explained_variance_ratio"])
            on_pca, on_tsne = vote(np.array(pca["points"]), y), vote(np.array(tsne["points"]), y)
            print(  # noqa: T201
                f"| {name} | {colour['name']} | {vote(mu, y):.3f} | {on_pca:.3f} | {on_tsne:.3f} "
                f"| {ratio:.0%} | {tsne['settings']['seconds']:.0f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
