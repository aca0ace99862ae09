"""One-time conversions of models made elsewhere into our checkpoint folder.

An importer reads another project's files as data (tensors through PyTorch's weights-only loader,
settings as JSON), each checked as the checkpoint loader checks its own (a regular file in its
folder, under a size limit, before a byte is read), maps its tensor names onto our network in
one table, checks every name, shape and value, and writes an ordinary checkpoint folder
(model.safetensors + config.json + card.json + README.md) whose card records where the model came
from and under which licence. From then on the model is ours: serving never sees the foreign
format.

    app.importers.disentangling_vae   YannDubs/disentangling-vae's results/NAME folders
    app.importers.train_losses_log    their training log: the KL per latent of a model whose
                                      data is not here
    app.importers.common              the file checks, the weights-only load, the folder write
"""

from __future__ import annotations


class ModelImportError(Exception):
    """A model that cannot be imported, with what is wrong and where. Named for what it is, not
    a subclass of the built-in ImportError (a failed module import): code that catches that one
    around optional imports must not swallow a refused model."""
