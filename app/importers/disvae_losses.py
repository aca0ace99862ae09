"""disentangling-vae's losses in our terms: which specs.json keys each reads, and the objective,
β and recipe in words that the imported model's config.json and card record
(`app.importers.disentangling_vae`)."""

from __future__ import annotations

from dataclasses import dataclass

from app.importers import ModelImportError

# the specs.json keys each of their losses reads (disvae/models/losses.py, get_loss_f); reg_anneal
# is the number of steps over which each ramps a term up from 0
LOSS_KEYS: dict[str, tuple[str, ...]] = {
    "VAE": ("reg_anneal",),
    "betaH": ("betaH_B", "reg_anneal"),
    "betaB": ("betaB_initC", "betaB_finC", "betaB_G", "reg_anneal"),
    "factor": ("factor_G", "lr_disc", "reg_anneal"),
    "btcvae": ("btcvae_A", "btcvae_B", "btcvae_G", "reg_anneal"),
}


@dataclass(frozen=True)
class Objective:
    """Their loss in our terms: config.json's objective and β, and a recipe in words."""

    name: str
    beta: float
    recipe: str


def map_loss(loss: str, h: dict[str, float]) -> Objective:
    """Their loss and its hyperparameters → our objective name where ours is the same loss,
    else their loss's name; β is the weight on the KL term where the loss has one."""
    n = int(h["reg_anneal"])
    ramp = f" over the first {n:,} steps" if n else ""
    if loss in ("VAE", "betaH"):
        # rec + a·β·KL, a rising linearly from 0 to 1: our beta objective with a KL warm-up
        beta = 1.0 if loss == "VAE" else float(h["betaH_B"])
        what = "VAE, β=1 (negative ELBO)" if loss == "VAE" else f"β-VAE, β={beta:g}"
        warm = f", KL warm-up{ramp}" if n else ""
        return Objective("beta", beta, what + warm)
    if loss == "betaB":
        # rec + γ·|KL − C|, C rising linearly from C_init to C_fin: our capacity objective,
        # which starts C at 0
        init, fin, gamma = h["betaB_initC"], h["betaB_finC"], h["betaB_G"]
        return Objective(
            "capacity" if init == 0 else "betaB",
            1.0,
            f"controlled capacity (Burgess et al. 2018), γ={gamma:g} on |KL − C|, C rising "
            f"from {init:g} to {fin:g} nats{ramp}; no fixed KL weight, so the β of 1 in "
            "config.json is not a weight this loss used",
        )
    if loss == "factor":
        return Objective(
            "factor",
            1.0,
            f"FactorVAE (Kim & Mnih 2018), KL weight 1 and γ={h['factor_G']:g} on the total "
            f"correlation as a discriminator estimates it (γ rising from 0{ramp}; the "
            f"discriminator, learning rate {h['lr_disc']:g}, is not part of model.pt)",
        )
    if loss == "btcvae":
        # not our tc: the same decomposition, but minibatch-stratified sampling (theirs) is a
        # different estimator of log q(z) from our minibatch-weighted one, and the
        # dimension-wise KL is ramped up
        return Objective(
            "btcvae",
            float(h["btcvae_B"]),
            f"β-TCVAE (Chen et al. 2018), β={h['btcvae_B']:g} on the total correlation, "
            f"α={h['btcvae_A']:g} on the index-code mutual information, γ={h['btcvae_G']:g} on "
            f"the dimension-wise KL (rising from 0{ramp}), log q(z) by minibatch-stratified "
            "sampling",
        )
    raise ModelImportError(f"unknown loss {loss!r}")  # read_specs lets only LOSS_KEYS through
