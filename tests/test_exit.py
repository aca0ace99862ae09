"""A server process that exits while work runs in its background (a data set's encoding, a
t-SNE) exits with its own status: native threads torn down under running torch or openTSNE code
aborted it instead ("terminate called without an active exception", status 134)."""

from __future__ import annotations

import subprocess
import sys

from app.settings import PROJECT_ROOT

SCRIPT = """
import sys, httpx
from pathlib import Path
from tests.browser_server import live_server
from app.settings import Settings
settings = Settings(checkpoints_dir=Path(sys.argv[1]), max_map_points=300)
with live_server(settings) as url:
    for params in ({"data": "dsprites", "n": 50}, {"method": "tsne", "n": 300}):
        r = httpx.get(f"{url}/api/models/tiny-vae/map", params=params, timeout=120)
        assert r.status_code == 202, r.text  # started in the background, and left running
print("leaving")
"""


def test_a_process_exits_cleanly_with_an_encoding_and_a_layout_still_running(trained):
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(trained["tiny-vae"].parent)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "leaving" in run.stdout and "terminate called" not in run.stderr
