"""examples/notebook_serve.ipynb, run top to bottom in a real Jupyter kernel (nbclient and
ipykernel, as `jupyter nbconvert --execute` would): the model trained in the notebook is served
from the kernel and shown inline, and the server answers the notebook's own request; then a
diffusers AutoencoderKL object (the shipped one) is served with its latent kept spatial. Training is
cut to a few steps (the notebook reads LATENT_EXPLORER_EXAMPLE_STEPS)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import numpy as np
from nbclient import NotebookClient
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook_serve.ipynb"


def outputs(cell: nbformat.NotebookNode, kind: str) -> list[str]:
    """A cell's outputs of one MIME type (text/plain also from printed streams)."""
    found = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and kind == "text/plain":
            found.append(out["text"])
        elif kind in out.get("data", {}):
            found.append(out["data"][kind])
    return found


def test_the_example_notebook_trains_serves_and_shows_the_explorer_inline(monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("LATENT_EXPLORER_EXAMPLE_STEPS", "20")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})  # fmt: skip
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on an error
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "trained 20 steps" in "".join(outputs(code[0], "text/plain"))
    (shown,) = outputs(code[1], "text/html")
    frame = re.search(r'<iframe src="(http://127\.0\.0\.1:\d+/)\?model=my-mlp-vae"', shown)
    assert frame is not None, shown
    assert f'href="{frame[1]}?model=my-mlp-vae"' in shown
    assert "my-mlp-vae 6 latents" in "".join(outputs(code[2], "text/plain"))
    (png,) = outputs(code[2], "image/png")
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))))
    assert picture.shape[:2] == (28, 28) and picture.std() > 0  # a decoded sprite, not blank
    # the shipped AutoencoderKL, loaded by diffusers from its folder, served with its latent
    (shown,) = outputs(code[3], "text/html")
    assert re.search(r'<iframe src="http://127\.0\.0\.1:\d+/\?model=scenes-kl"', shown), shown
    assert "4 channels over 8×8 cells: 256 values" in "".join(outputs(code[4], "text/plain"))
