"""The query parameters several routers take: a latent vector, a class, an enlargement, a
dataset image. The `x-...` keys are markers that app/web/openapi.py turns into the served
models' bounds."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

LatentText = Annotated[
    str,
    Query(
        description="comma-separated latent values, one per latent dimension",
        json_schema_extra={"x-latent-vector": True},
    ),
]
Label = Annotated[
    int | None,
    Query(
        description="class index, for a conditional VAE (404 from a model without that class)",
        json_schema_extra={"x-class-index": True},
    ),
]
Scale = Annotated[
    int,
    Query(
        ge=1,
        description="nearest-neighbour enlargement",
        json_schema_extra={"x-maximum": "max_image_scale"},
    ),
]
DatasetIndex = Annotated[
    int,
    Query(
        ge=0,
        description="an image of the model's dataset (dSprites: < 737,280; Fashion-MNIST: its "
        "test split, < 10,000); 404 past its end",
        json_schema_extra={"x-dataset-index": True},
    ),
]
