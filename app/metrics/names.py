"""The disentanglement scores a card can hold, in the order pages show them, and what each is
called. Under the papers' names: the score as google-research/disentanglement_lib computes it
(app/metrics/reference.py), comparable with published tables. Under names of their own: our
faster variants (app/metrics/scores.py), which read differently (docs/metrics.md measures by how
much on the shipped models)."""

from __future__ import annotations

LABELS = {
    "active_latents": "active latents",
    "mig": "MIG",
    "beta_vae": "β-VAE score",
    "factor_vae": "FactorVAE score",
    "dci_disentanglement": "DCI disentanglement",
    "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness",
    "sap": "SAP",
    "modularity": "modularity",
    "explicitness": "explicitness",
    "dci_et_disentanglement": "DCI disentanglement (extra trees)",
    "dci_et_completeness": "DCI completeness (extra trees)",
    "dci_et_informativeness": "DCI informativeness (extra trees)",
    "sap_tree": "SAP (tree, balanced accuracy)",
}
METRICS = tuple(LABELS)
# our variants, which a published figure is never to be set beside
VARIANTS = frozenset(
    {"dci_et_disentanglement", "dci_et_completeness", "dci_et_informativeness", "sap_tree"}
)
