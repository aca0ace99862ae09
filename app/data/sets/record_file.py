"""`dataset.json`: a folder's own record of what its images are, beside them (optional).

    {
      "name": "celeba-100",                     the name it is served under (default: the folder's)
      "description": "100 CelebA photographs",
      "model_dataset": "celeba",                models whose config names this data set view this
                                                set by default (an imported CelebA model)
      "factors": ["shape", "scale"],            columns that are generating factors (metrics)
      "columns": {                              a column's kind, where guessing would be wrong
        "label": {"kind": "categorical", "categories": ["T-shirt/top", "trouser", ...]},
        "scale": {"kind": "ordered"}
      },
      "credit": "…", "licence": "…"             shown with the set
    }

Read and checked once, strictly (a wrong field is refused in one line naming it); everything
below works with the typed `SetRecord`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.data.base import DatasetError
from app.quoting import first_problem

RECORD_FILE = "dataset.json"
MAX_RECORD_BYTES = 1024 * 1024


class ColumnRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: Literal["categorical", "ordered"]
    # categorical: the names of codes 0, 1, … where the table holds codes
    categories: tuple[str, ...] = ()


class SetRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    description: str = ""
    model_dataset: str | None = None
    factors: tuple[str, ...] = ()
    columns: dict[str, ColumnRecord] = Field(default_factory=dict)
    credit: str = ""
    licence: str = ""


def json_object(path: Path, data: bytes) -> dict[str, object]:
    """`data`, read from `path`, as a JSON object; DatasetError in one line naming the file
    where it is not JSON or not an object."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not JSON ({e})") from None
    if not isinstance(value, dict):
        raise DatasetError(f"{path}: must be a JSON object")
    return value


def read_record(root: Path) -> SetRecord:
    """The folder's dataset.json, or an empty record where it has none; a DatasetError in one
    line for one that is not JSON or has a wrong field."""
    path = root / RECORD_FILE
    if not path.is_file():
        return SetRecord()
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise DatasetError(f"{path}: larger than {MAX_RECORD_BYTES:,} bytes")
    raw = path.read_bytes()
    json_object(path, raw)
    try:
        # from the JSON text: strict mode takes a JSON array for a tuple only there
        return SetRecord.model_validate_json(raw)
    except ValidationError as e:
        raise DatasetError(f"{path}: {first_problem(e, 'record')}") from None
