"""`latent-explorer encode` under torchrun: two processes on the CPU (gloo) share the chunks,
process 0 merges them, and the one file holds what a single process makes of the set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from app.data.sets import open_set
from app.encodings import RunSettings, encode_set
from tests.test_encodings import tiny_model, write_pictures

ROOT = Path(__file__).resolve().parent.parent


def test_two_processes_encode_what_one_does(tmp_path):
    model = tiny_model(tmp_path / "tiny-colour")
    pictures = write_pictures(tmp_path / "pictures", 30)
    cache = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "app", "encode", str(model.path), str(pictures), "--cache-dir", str(cache),
         "--chunk", "4", "--batch", "3", "--workers", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("tiny-colour on pictures: encoded") == 1  # process 0 alone says it
    # 8 chunks of 4 images (the last of 2), shared out in turn
    assert "process 0 of 2: chunks 0, 2, 4, 6 (0 kept" in run.stderr
    assert "process 1 of 2: chunks 1, 3, 5, 7 (0 kept" in run.stderr
    files = list((cache / "encodings").iterdir())
    assert len(files) == 1 and files[0].suffix == ".parquet"  # parts merged, lock gone

    one = encode_set(model, open_set(pictures), tmp_path / "alone",
                     settings=RunSettings(batch_size=3, workers=1, chunk_size=4))  # fmt: skip
    assert files[0].name == one.path.name  # the same key
    table = pq.read_table(files[0])
    assert table.column("index").to_pylist() == list(range(30))
    assert table.column("ok").to_pylist() == [True] * 30
    for name in ("mu", "logvar", "kl"):
        shared = np.stack(table.column(name).to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(shared, getattr(one, name), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(table.column("nll").to_numpy(), one.nll, rtol=1e-5)
