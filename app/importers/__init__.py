"""One-time conversions of models made elsewhere into our checkpoint folder.

An importer reads another project's files as data (tensors through PyTorch's weights-only loader,
settings as JSON), maps its tensor names onto our network in one table, checks every name, shape
and value, and writes an ordinary checkpoint folder (model.safetensors + config.json + card.json +
README.md) whose card records where the model came from and under which licence. From then on the
model is ours: serving never sees the foreign format.

    app.importers.disentangling_vae   YannDubs/disentangling-vae's results/NAME folders
"""

from __future__ import annotations


class ModelImportError(Exception):
    """A model that cannot be imported, with what is wrong and where. Named for what it is, not
    a subclass of the built-in ImportError (a failed module import): code that catches that one
    around optional imports must not swallow a refused model."""
