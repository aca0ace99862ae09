"""Experiment, not part of the app: does a 3-way categorical latent (JointVAE, Dupont 2018)
take dSprites' shape? (README, "What we tried for the disentangled model".)

Continuous part: the β-TCVAE loss on 10 Gaussian latents, as the shipped model. Discrete part:
q(c|x) categorical over 3, relaxed with Gumbel-softmax (τ=0.67) for the decoder, KL to the
uniform prior held at a rising capacity: γ_d·|KL_c − C(step)|, C → log 3 (Dupont's scheme);
with --disc-mi the information I(x; c) is held there instead.
The decoder takes [z, c] (one-hot c) like a CVAE's. Started from a trained VAE's weights:
the new logits head is random, the decoder's new input columns start at zero.

usage: PYTHONPATH=. python docs/experiments/jointvae_probe.py OUT INIT_CHECKPOINT STEPS
       [--beta 10] [--gamma-d 100] [--c-steps 10000] [--disc-mi] [--seed 0] [--threads 1]
(resumes from OUT if it exists; prints a probe of q(c|x) and μ against the factors every
2,000 steps: 3,000 held-out images, MI / H(factor), 20-bin μ and argmax c)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from app.checkpoints import flatten_optimizer, load_checkpoint, unflatten_optimizer
from app.data import open_dataset
from app.metrics.scores import discretize, entropy, mutual_info_matrix
from app.models.config import ModelConfig
from app.models.elbo import kl_per_dim, reconstruction_nll, reparameterize
from app.models.objectives import BetaTCVAE
from app.models.vae import Decoder, Encoder
from app.training.stream import step_data

K = 3


class JointVAE(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.cat_head = nn.Linear(cfg.hidden_dim, K)
        dec_cfg = ModelConfig(
            kind="cvae", label_names=tuple(f"c{i}" for i in range(K)), latent_dim=cfg.latent_dim
        )
        self.decoder = Decoder(dec_cfg)

    def encode(self, x):
        h = self.encoder.dense(self.encoder.convs(x).flatten(1))
        mu, logvar = self.encoder.head(h).chunk(2, dim=1)
        return mu, logvar, self.cat_head(h)

    def decode(self, z, c):
        return self.decoder(z, c)


def init_from(model: JointVAE, path: Path) -> None:
    ck = load_checkpoint(path)
    model.encoder.load_state_dict(ck.model.encoder.state_dict())
    sd = ck.model.decoder.state_dict()
    w = sd["dense.0.weight"]  # (H, D)
    sd["dense.0.weight"] = torch.cat([w, torch.zeros(w.shape[0], K)], dim=1)
    model.decoder.load_state_dict(sd)


@torch.no_grad()
def probe(model: JointVAE, x: torch.Tensor, factors: np.ndarray, names) -> dict:
    model.eval()
    mus, cats = [], []
    for chunk in x.split(500):
        mu, _, logits = model.encode(chunk)
        mus.append(mu)
        cats.append(logits.argmax(1))
    model.train()
    mu = torch.cat(mus).numpy()
    c = torch.cat(cats).numpy()[:, None]
    codes = np.concatenate([discretize(mu), c], axis=1)
    mi = mutual_info_matrix(codes, factors) / entropy(factors)
    lead = mi.argmax(0)
    srt = np.sort(mi, 0)
    return {
        "leaders": dict(zip(names, [int(v) for v in lead], strict=True)),
        "mig": round(float((srt[-1] - srt[-2]).mean()), 3),
        "cat_row": [round(float(v), 2) for v in mi[-1]],
        "shape_col": [round(float(v), 2) for v in mi[:, 0]],
        "cat_use": np.bincount(c[:, 0], minlength=K).tolist(),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("init", type=Path)
    p.add_argument("steps", type=int)
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--gamma-d", type=float, default=100.0)
    p.add_argument("--c-steps", type=int, default=10_000)
    p.add_argument("--c-max", type=float, default=math.log(K))
    p.add_argument("--tau", type=float, default=0.67)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--probe-every", type=int, default=2000)
    # hold the information I(x; c) = H(E q) − E H(q) at the capacity instead of KL(q ‖ uniform),
    # which a confident but constant q(c|x) already satisfies
    p.add_argument("--disc-mi", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    ds = open_dataset("dsprites")
    cfg = ModelConfig(
        kind="vae", latent_dim=10, objective="tc", beta=a.beta, factor_names=tuple(ds.factor_names)
    )
    torch.manual_seed(a.seed)
    model = JointVAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    a.out.mkdir(parents=True, exist_ok=True)
    state_file = a.out / "state.json"
    step, log = 0, []
    if state_file.exists():
        st = json.loads(state_file.read_text())
        step, log = st["step"], st["log"]
        model.load_state_dict(load_file(a.out / "model.safetensors"))
        opt.load_state_dict(unflatten_optimizer(load_file(a.out / "opt.safetensors"), st["opt"]))
        print("resumed at", step, flush=True)
    else:
        init_from(model, a.init)
    tc = BetaTCVAE(beta=a.beta, dataset_size=len(ds))
    held = ds.sample(np.random.default_rng(31337), 3000)
    hx = torch.from_numpy(held.images).float()

    def save() -> None:
        tensors, meta = flatten_optimizer(opt.state_dict())
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            a.out / "model.safetensors.tmp",
        )
        save_file(tensors, a.out / "opt.safetensors.tmp")
        (a.out / "model.safetensors.tmp").replace(a.out / "model.safetensors")
        (a.out / "opt.safetensors.tmp").replace(a.out / "opt.safetensors")
        args = {k: str(v) for k, v in vars(a).items()}
        state = {"step": step, "log": log, "opt": meta, "args": args}
        (a.out / "state.json").write_text(json.dumps(state))

    stop = False
    import signal

    def on_term(*_):  # noqa: ANN002
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    model.train()
    while step < a.steps and not stop:
        d = step_data(ds, a.seed + 1000, 0, step, a.batch, cfg.latent_dim)
        x = d.x
        g = torch.Generator().manual_seed(a.seed * 1_000_003 + step)
        mu, logvar, logits = model.encode(x)
        z = reparameterize(mu, logvar, d.eps)
        u = torch.rand(logits.shape, generator=g).clamp_(1e-10, 1 - 1e-10)
        c = F.softmax((logits - torch.log(-torch.log(u))) / a.tau, dim=1)
        decoded = model.decode(z, c)
        nll = reconstruction_nll(decoded, x, "bernoulli")
        terms = tc(nll, mu, logvar, z, step)
        q = F.softmax(logits, dim=1)
        kl_c = (q * (F.log_softmax(logits, dim=1) + math.log(K))).sum(1).mean()
        if a.disc_mi:
            marginal = q.mean(0)
            kl_c = kl_c - (marginal * (marginal.clamp_min(1e-12).log() + math.log(K))).sum()
        cap = a.c_max * min(1.0, step / max(1, a.c_steps))
        loss = terms.loss + a.gamma_d * (kl_c - cap).abs()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            kl = kl_per_dim(mu, logvar).mean(0).detach()
            print(
                f"{step} {time.monotonic() - t0:.0f}s recon {terms.recon.item():.1f} "
                f"kl_c {kl_c.item():.3f}/{cap:.3f} kl {' '.join(f'{v:.2f}' for v in kl)}",
                flush=True,
            )
        if step % a.probe_every == 0 or step == a.steps:
            pr = probe(model, hx, held.factors, ds.factor_names)
            pr["step"] = step
            log.append(pr)
            print("PROBE", json.dumps(pr), flush=True)
        if step % 1000 == 0:
            save()
    save()
    print("saved at", step, flush=True)


if __name__ == "__main__":
    main()
