"""`latent-explorer serve | evaluate | import | label`: the commands that serve, score, bring in
and name models."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


def serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the explorer on the checkpoints folder",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; requests are answered for this address and for the hosts "
        "in LATENT_EXPLORER_ALLOWED_HOSTS (default: the loopback names); with 0.0.0.0 or :: and "
        "that variable unset, for any host, with a warning",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="folder of checkpoint folders (default: settings / ./checkpoints)",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="also serve the model that package.module:factory() returns (your own PyTorch "
        "code keeping the model interface; see docs/plugins.md); repeatable",
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also serve the folder PATH as data set NAME (images in class sub-folders or with "
        "a metadata.csv; see docs/api.md), which any model can be viewed on; repeatable. "
        "Every folder of LATENT_EXPLORER_DATASETS_DIR (default ./datasets) is served too",
    )


class DataArgumentError(ValueError):
    """A `--data` argument that is not NAME=PATH, with what is wrong."""


def parse_data(items: list[str]) -> dict[str, Path]:
    """`--data NAME=PATH` arguments → {NAME: absolute PATH}; DataArgumentError in one line for
    a form that is not NAME=PATH, a NAME a URL cannot carry, or a NAME given twice."""
    from app.data.sets import SET_NAME
    from app.quoting import quoted

    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DataArgumentError(
                f"--data {quoted(item)}: expected NAME=PATH, e.g. --data faces=~/pictures/faces"
            )
        if not SET_NAME.fullmatch(name):
            raise DataArgumentError(
                f"--data {quoted(item)}: the name {quoted(name)} must be letters, digits, '.', "
                "'_' or '-', the first a letter or digit (it is part of URLs: data=NAME)"
            )
        if name in out:
            raise DataArgumentError(f"--data {quoted(item)}: the name {name!r} is given twice")
        out[name] = Path(path).expanduser().resolve()
    return out


def serve(ns: argparse.Namespace) -> int:
    from app import server
    from app.data.sets import DatasetError
    from app.main import load_data_sets
    from app.plugins import PluginError, load_plugin
    from app.settings import Settings

    try:  # every LATENT_EXPLORER_* variable parses: said here once, not by each worker
        Settings()
    except ValueError as e:
        example = """LATENT_EXPLORER_ALLOWED_HOSTS='["explorer.example.org"]'"""
        print(f"latent-explorer serve: error: {e} (a list is JSON, e.g. {example})",  # noqa: T201
              file=sys.stderr)  # fmt: skip
        return 2
    for spec in ns.plugin:  # each is probed here first, so a mistake is one clear line
        try:
            load_plugin(spec)
        except PluginError as e:
            print(f"latent-explorer serve: error: {e}", file=sys.stderr)  # noqa: T201
            return 2
    try:  # the data sets are opened here first too (folders are listed, no image read)
        data = parse_data(ns.data)
        load_data_sets(Settings(data={**Settings().data, **data}))
    except (DataArgumentError, DatasetError) as e:
        print(f"latent-explorer serve: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    return server.serve(
        host=ns.host, port=ns.port, checkpoints=ns.checkpoints, workers=ns.workers,
        plugins=tuple(ns.plugin), data=data,
    )  # fmt: skip


def evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a model (disentanglement metrics, or likelihood on a test split) into its "
        "card.json",
        description="A model of ground-truth data (dSprites, the colour shapes): active units, "
        "MIG, β-VAE and FactorVAE scores, DCI, SAP, modularity and explicitness on freshly "
        "rendered images (fixed evaluation seeds), as mean ± std over seeds, each with its "
        "settings. A model of a dataset with a test split (Fashion-MNIST): the ELBO and the "
        "importance-weighted bound on log p(x) (nats and bits per dimension) on the test "
        "images, and a linear probe of the class from μ beside one on the raw pixels. The "
        "results go into the checkpoint's card.json (docs/metrics.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder, e.g. checkpoints/NAME")
    metrics = p.add_argument_group("disentanglement metrics (a model of ground-truth data)")
    metrics.add_argument("--seeds", type=int, default=3, help="evaluation seeds 0..N-1")
    metrics.add_argument(
        "--points", type=int, default=10_000, help="images per seed (and half as many held out)"
    )
    metrics.add_argument(
        "--only",
        default=None,
        help="comma-separated scores to compute (default all): active_latents, mig, beta_vae, "
        "factor_vae, dci_disentanglement, dci_completeness, dci_informativeness, sap, "
        "modularity, explicitness (as disentanglement_lib computes them; its DCI's gradient "
        "boosting takes ~6 min, on the first seed only), dci_et_disentanglement, "
        "dci_et_completeness, dci_et_informativeness, sap_tree (our faster variants)",
    )
    metrics.add_argument(
        "--library-sizes",
        action="store_true",
        help="β-VAE and FactorVAE scores on disentanglement_lib's 10,000 train / 5,000 eval "
        "points (~30 min a seed on 2 cores) instead of 300 / 150 and 500 / 250",
    )
    split = p.add_argument_group("test-split scores (a model of a dataset with a test split)")
    split.add_argument(
        "--k",
        type=int,
        default=None,
        help="samples of q(z|x) per image for the bound; unset: 1,000",
    )
    split.add_argument(
        "--images",
        type=int,
        default=None,
        metavar="N",
        help="score only the first N test images; unset: all",
    )
    split.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the dataset's files (Fashion-MNIST's four idx files; default: "
        "LATENT_EXPLORER_FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist)",
    )
    on_set = p.add_argument_group("scores on a data set (any model; printed, not written)")
    on_set.add_argument(
        "--set",
        dest="on_set",
        default=None,
        metavar="NAME_OR_PATH",
        help="score the model on this data set (a built-in's name or a folder): metrics over "
        "its factor columns, a probe of each categorical column, the ELBO and L_k on its test "
        "split or a seeded share (--k, --images: at most N images get the bound, --points)",
    )
    on_set.add_argument(
        "--share",
        type=float,
        default=None,
        help="held-out share of a set without a test split; unset: 0.2",
    )
    on_set.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where encodings and scores are kept (default: settings' cache_dir, else .cache)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def evaluate(ns: argparse.Namespace) -> int:
    from app.checkpoints import CheckpointError, load_checkpoint
    from app.data.ground_truth import ground_truth
    from app.data.test_split import has_test_split
    from app.metrics.evaluate import EvaluationError

    try:
        if ns.threads:
            import torch

            torch.set_num_threads(ns.threads)
        if ns.on_set is not None:
            from app.cli.set_scores import evaluate_on_set

            return evaluate_on_set(ns)
        dataset = load_checkpoint(ns.checkpoint).config.dataset
        if ground_truth(dataset) is not None:
            return _evaluate_metrics(ns, dataset)
        if has_test_split(dataset):
            return _evaluate_test_split(ns, dataset)
        raise EvaluationError(
            f"{ns.checkpoint.name}: the model was trained on {dataset!r}, whose images have no "
            "known factors and no test split here: evaluate needs one or the other (dSprites or "
            "the colour shapes for the disentanglement metrics, Fashion-MNIST for the "
            "likelihood on its test split)"
        )
    except (CheckpointError, EvaluationError) as e:
        print(f"latent-explorer evaluate: error: {e}", file=sys.stderr)  # noqa: T201
        return 2


def _evaluate_metrics(ns: argparse.Namespace, dataset: str) -> int:
    from app.metrics.evaluate import (
        METRICS,
        EvaluationError,
        EvaluationSettings,
        evaluate_checkpoint,
        format_table,
    )

    given = [f"--{o}" for o in ("k", "images", "data") if getattr(ns, o) is not None]
    if given:
        raise EvaluationError(
            f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for a model judged on a "
            f"test split; {ns.checkpoint.name} was trained on {dataset!r}, whose ground-truth "
            "factors the disentanglement metrics score it against"
        )
    if ns.seeds < 1:
        raise EvaluationError(f"--seeds must be at least 1, got {ns.seeds}")
    only = tuple(m.strip() for m in ns.only.split(",") if m.strip()) if ns.only else METRICS
    settings = EvaluationSettings(
        seeds=tuple(range(ns.seeds)),
        points=ns.points,
        test_points=ns.points // 2,
        only=only,
    )
    if ns.library_sizes:
        library = (10_000, 5_000)
        settings = replace(settings, beta_vae_points=library, factor_vae_votes=library)
    metrics = evaluate_checkpoint(ns.checkpoint, settings, progress=ns.progress)
    print(format_table(ns.checkpoint.name, metrics))  # noqa: T201
    print(f"\nwrote the metrics into {ns.checkpoint / 'card.json'}")  # noqa: T201
    return 0


def _evaluate_test_split(ns: argparse.Namespace, dataset: str) -> int:
    from app.metrics.evaluate import EvaluationError
    from app.metrics.test_scores import DEFAULT_K, evaluate_test_split, format_test_table
    from app.settings import Settings

    if ns.only:
        raise EvaluationError(
            f"--only names disentanglement metrics, which need ground-truth factors; "
            f"{ns.checkpoint.name} was trained on {dataset!r}, which has none: it is judged on "
            "its test split (--k, --images)"
        )
    root = ns.data if ns.data is not None else Settings().fashion_mnist_dir
    k = DEFAULT_K if ns.k is None else ns.k
    entry = evaluate_test_split(ns.checkpoint, root, k, ns.images, progress=ns.progress)
    print(format_test_table(ns.checkpoint.name, entry))  # noqa: T201
    print(f"\nwrote the test-split scores into {ns.checkpoint / 'card.json'}")  # noqa: T201
    return 0


def import_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert a model made elsewhere into a checkpoint folder",
        description="Convert a model trained by another project into a checkpoint folder "
        "(model.safetensors, config.json, card.json, README.md), once; its card records where it "
        "came from and its licence.",
    )
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    d = formats.add_parser(
        "disentangling-vae",
        help="a results/NAME folder of YannDubs/disentangling-vae",
        description="A results/NAME folder of YannDubs/disentangling-vae (model.pt, specs.json, "
        "train_losses.log where there; the repository's LICENSE two levels up): its Burgess "
        "network becomes ours, model.pt read with PyTorch's weights-only loader, every tensor "
        "checked. The KL per latent that orders the sliders is measured on images of the data "
        "set where they can be drawn here (dSprites), else taken from the last epoch of "
        "train_losses.log.",
    )
    d.add_argument("src", type=Path, metavar="SRC", help="the results/NAME folder")
    _output_arguments(
        d,
        "disvae-<loss>-<dataset> from specs.json and whatever SRC's folder name adds to their "
        "<loss>_<dataset>, e.g. disvae-btcvae-celeba for results/btcvae_celeba, "
        "disvae-btcvae-celeba_a5 for results/btcvae_celeba_a5",
    )
    d.add_argument(
        "--commit",
        default=None,
        help="the repository commit SRC comes from, recorded in the card (default: unknown)",
    )

    y = formats.add_parser(
        "pythae",
        help="a folder written by pythae's model.save()",
        description="A folder written by pythae's (clementchadebec/benchmark_VAE) model.save(): "
        "VAE, BetaVAE, BetaTCVAE, FactorVAE or IWAE on pythae's default MLP networks or its "
        "MNIST, CIFAR or CelebA convolutional or ResNet benchmark networks (named in encoder.pkl "
        "and decoder.pkl, whose opcodes are read, never run). model.pt is read with PyTorch's "
        "weights-only loader and nothing is unpickled: a folder whose pickles hold a network of "
        "its own is refused, naming its class (serve such a model as a plugin, "
        "docs/plugins.md).",
    )
    y.add_argument("src", type=Path, metavar="SRC", help="the folder model.save() wrote")
    _output_arguments(y, "pythae-<model>-<SRC's folder name>, e.g. pythae-betavae-run1")

    g = formats.add_parser(
        "lightning",
        help="a PyTorch Lightning checkpoint of an AntixK/PyTorch-VAE model",
        description="A Lightning checkpoint (.ckpt) of an AntixK/PyTorch-VAE model whose "
        "networks are VanillaVAE's (VanillaVAE, BetaVAE, DIPVAE, InfoVAE, FactorVAE, LogCoshVAE, "
        "MSSIMVAE), with the YAML it was trained with. The checkpoint is read with PyTorch's "
        "weights-only loader (nothing in it runs), the network rebuilt from the YAML's "
        "model_params, every tensor under `model.` checked by name and shape.",
    )
    g.add_argument("src", type=Path, metavar="CKPT", help="the checkpoint, e.g. last.ckpt")
    g.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="YAML",
        help="the config it was trained with (PyTorch-VAE's configs/NAME.yaml)",
    )
    g.add_argument(
        "--dataset",
        default="celeba",
        help="what it was trained on, for its card (default: celeba, PyTorch-VAE's data set)",
    )
    _output_arguments(g, "pytorch-vae-<model>-<CKPT's stem>, e.g. pytorch-vae-vanillavae-last")


def _output_arguments(p: argparse.ArgumentParser, default_name: str) -> None:
    """An import's --out and --name."""
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="checkpoint folder to write, refused if it exists (default: checkpoints/NAME)",
    )
    p.add_argument(
        "--name",
        default=None,
        help=f"the model's name (default: {default_name}; with --out, its folder's name)",
    )


def import_model(ns: argparse.Namespace) -> int:
    import shlex

    from app.importers import ModelImportError
    from app.importers.disentangling_vae import import_disentangling_vae
    from app.importers.lightning import import_lightning
    from app.importers.pythae import import_pythae

    options = {
        "disentangling-vae": ("out", "name", "commit"),
        "lightning": ("config", "dataset", "out", "name"),
    }.get(ns.format, ("out", "name"))
    given = [(f"--{k}", getattr(ns, k)) for k in options]
    command = shlex.join(["latent-explorer", "import", ns.format, str(ns.src)]
                         + [str(v) for kv in given if kv[1] is not None for v in kv])  # fmt: skip
    try:
        if ns.format == "pythae":
            ckpt = import_pythae(ns.src, ns.out, name=ns.name, command=command)
        elif ns.format == "lightning":
            ckpt = import_lightning(
                ns.src, ns.config, ns.out, name=ns.name, dataset=ns.dataset, command=command
            )
        else:
            ckpt = import_disentangling_vae(
                ns.src, ns.out, name=ns.name, commit=ns.commit, command=command
            )
    except ModelImportError as e:
        print(f"latent-explorer import: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    cfg, card = ckpt.config, ckpt.card
    print(f"wrote {ckpt.path}: {cfg.latent_dim} latents, {cfg.channels}×{cfg.image_size}×"  # noqa: T201
          f"{cfg.image_size}, {cfg.dataset}; {card.recipe}")  # fmt: skip
    if card.kl:
        kl = ", ".join(f"{v:.2f}" for v in card.kl)
        on = card.eval.images or f"{card.eval.eval_images:,} images" if card.eval else "its data"
        print(f"mean KL per latent on {on}: {kl}")  # noqa: T201
    return 0


def label_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label",
        help="name a model's latents (shown beside its sliders and traversals)",
        description="Name latents in a checkpoint's card.json: INDEX=NAME names one (at most 40 "
        "characters, no control characters, < or >), INDEX= removes its name; with no "
        "assignments, print the names. The card is rewritten atomically, nothing else in the "
        "folder changes; a running server shows the names once restarted.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder, e.g. checkpoints/NAME")
    p.add_argument("assignments", nargs="*", metavar="INDEX=NAME", help='e.g. 3="skin colour"')
    p.add_argument("--clear", action="store_true", help="remove every name first")


def label(ns: argparse.Namespace) -> int:
    from app.checkpoints.latent_names import LatentNameError, label_latents, read_names

    try:
        if ns.assignments or ns.clear:
            latent_dim, names = label_latents(ns.checkpoint, ns.assignments, clear=ns.clear)
        else:
            latent_dim, names = read_names(ns.checkpoint)
    except LatentNameError as e:
        print(f"latent-explorer label: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    print(f"{ns.checkpoint}: {len(names)} of {latent_dim} latents named")  # noqa: T201
    for i, name in names.items():
        print(f"  z{i}  {name}")  # noqa: T201
    return 0
