"""The β sweep's figures on the Fashion-MNIST test split, one JSON line per model: ELBO (k=1)
and L_100 on the first 1,000 binarised test images, KL per latent over all 10,000 grey ones,
and the class probe on μ (C = 1, 5-fold).

    PYTHONPATH=. python experiments/fashion-beta-sweep/sweep_eval.py NAME_OR_FOLDER ...
"""

import json
import sys
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.checkpoints import load_checkpoint
from app.data.test_split import test_split
from app.metrics.likelihood import importance_weighted_bound
from app.settings import Settings

torch.set_num_threads(1)
split = test_split("fashion-mnist", 28, Settings().fashion_mnist_dir)
assert split is not None
grey = torch.from_numpy(split.images).float() / 255
bits = torch.from_numpy(split.binarised).float()
for name in sys.argv[1:]:  # checkpoint names, or paths to folders
    folder = Path(name) if "/" in name else Path("checkpoints") / name
    served = load_checkpoint(folder).served()
    with torch.no_grad():
        posterior = served.model.encode(grey)
    kl = posterior.kl().mean(0)
    g = torch.Generator().manual_seed(0)
    elbo = importance_weighted_bound(served.model, bits[:1000], 1, g).mean().item()
    l100 = importance_weighted_bound(served.model, bits[:1000], 100, g).mean().item()
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    acc = cross_val_score(probe, posterior.mean.numpy(), split.labels, cv=folds)
    row = {
        "model": name, "steps": served.card.get("steps"), "elbo_1000": round(elbo, 2),
        "L100_1000": round(l100, 2), "kl_total": round(kl.sum().item(), 2),
        "active": int((kl > 0.1).sum()), "kl": [round(v, 2) for v in kl.tolist()],
        "probe": round(acc.mean(), 4), "probe_sd": round(acc.std(), 4),
    }  # fmt: skip
    print(json.dumps(row), flush=True)  # noqa: T201
