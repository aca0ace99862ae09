"""`latent-explorer train | serve | evaluate | import | label | data | encode | train-kl`: the one
console script."""

from __future__ import annotations

import argparse
import logging
import sys

from app.cli import data, encode, models, train
from app.training import autoencoder_kl

COMMANDS = {
    "train": (train.add_parser, train.run),
    "serve": (models.serve_parser, models.serve),
    "evaluate": (models.evaluate_parser, models.evaluate),
    "import": (models.import_parser, models.import_model),
    "label": (models.label_parser, models.label),
    "data": (data.add_parser, data.run),
    "encode": (encode.add_parser, encode.run),
    "train-kl": (autoencoder_kl.add_parser, autoencoder_kl.run),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latent-explorer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return COMMANDS[ns.command][1](ns)


if __name__ == "__main__":
    sys.exit(main())
