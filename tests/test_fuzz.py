"""Property-based fuzzing of the whole API from its OpenAPI schema: the real `schemathesis run`
with every check it has against a live server with the tiny models, and it must find nothing.

Every check it has: no 5xx; each status, content type, header and body as the schema documents
it; every request the schema calls valid answered (2xx, or a model's 404), every one it calls
invalid refused; an undocumented method a 405 whose `Allow` lists the path's methods; and the
response-time limit, here 60 s (a hang, not a slow machine: a model's first Figure 2 takes
seconds, more beside a training run). Its requests come from all its phases: the coverage phase
(each parameter's boundary and just-past-boundary values, missing and malformed fields,
unsupported methods), a bounded number of generated requests per operation, valid and invalid,
and stateful sequences that feed one response into the next request. The upload parts are real
images (tests/fuzz_hooks.py, named by schemathesis.toml). One check is off for one operation:
a layout file upload's schema-valid body may be refused (a layout must place every image of its
set, which no schema can say). The test process must also exit cleanly after it: background
jobs that outlive a run (a data set's encoding, a t-SNE) stop at exit instead of aborting it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request

import pytest

from app.settings import PROJECT_ROOT, Settings
from tests.browser_server import live_server

EXAMPLES = 15  # generated requests per operation and mode: about 1,900 requests, about a minute


@pytest.fixture(scope="module")
def api_url(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    # maps of at most 300 points: t-SNE's of every size the fuzzer asks for would take minutes;
    # the library's scores of the tiny models (their cards lack them) on 100 images, not 10,000
    settings = Settings(checkpoints_dir=root, max_map_points=300, reference_points=100)
    with live_server(settings) as url:
        yield url


def test_schemathesis_with_every_check_finds_nothing(api_url, tmp_path):
    # schemathesis.toml's hooks, and no cache of past failures to replay first (nor to write)
    config = tmp_path / "schemathesis.toml"
    hooks = PROJECT_ROOT / "tests" / "fuzz_hooks.py"
    # a layout file's rows must place every image of the set: no schema can say that, so a
    # schema-valid upload refused with a 422 naming what is missing is right, not a finding
    # (a check named on the command line would override the operation's own setting, so every
    # check is turned on here, in the file)
    config.write_text(
        f'hooks = "{hooks}"\n\n[cache]\nenabled = false\n\n[checks]\nenabled = true\n\n'
        '[[operations]]\ninclude-name = "POST /api/datasets/{dataset}/layouts"\n'
        "checks.positive_data_acceptance.enabled = false\n"
    )
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{api_url}/openapi.json",
        "--max-response-time", "60", "--request-timeout", "60",
        "--max-examples", str(EXAMPLES),
        "--seed", "1", "--generation-database", "none",  # the same requests every run
        "--workers", "1", "--no-color",
    ]  # fmt: skip
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    with urllib.request.urlopen(f"{api_url}/openapi.json") as r:
        operations = sum(len(path) for path in json.load(r)["paths"].values())
    assert operations >= 20 and f"Tested: {operations}" in report, report[-5_000:]
