"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis + Hypothesis),
on a live server with the tiny models: a bounded number of generated requests per operation,
and none may get a 5xx or a response that contradicts the schema."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from app.settings import Settings
from tests.browser_server import live_server

EXAMPLES = 20  # per operation: about 300 requests in all, a few seconds
MODEL_NAMES = ["tiny-vae", "tiny-ae", "tiny-cvae", "nope", "../checkpoints"]


@pytest.fixture(scope="module")
def api_schema(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    for name, folder in trained.items():
        shutil.copytree(folder, root / name)
    with live_server(Settings(checkpoints_dir=root)) as url:
        yield schemathesis.openapi.from_url(url + "/openapi.json")


def test_no_generated_request_gets_a_5xx_or_breaks_the_schema(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12  # every API route is in the schema
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    for operation in operations:

        @given(case=operation.as_strategy(), name=st.sampled_from(MODEL_NAMES))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: a failure is reproducible
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case, name: str) -> None:
            if case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = name  # mostly real models, so requests get past 404
            # a 5xx or a broken schema is what fails here, not speed: a model's first Figure 2
            # took 5 s beside two training runs and passed schemathesis's default 10 s when the
            # suite also ran niced; this limit still catches a hang
            case.call_and_validate(checks=checks, timeout=60)

        fuzz()
