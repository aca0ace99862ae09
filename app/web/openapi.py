"""/openapi.json, told true: a request the schema calls valid is one the server answers (or, for
a model that lacks what it names, a 404); one it calls invalid is refused.

FastAPI writes the schema from the routes; this module finishes it on the first request, once the
lifespan has loaded the models, from what is served (app/web/deps.py: `Served`) and from the
settings, so that the schema and the handlers' checks read the same numbers:
- every route that names a model documents 404, every route with a body 400 and 413, all with
  the error body `{"detail": "..."}`;
- a model name is an enum of the served models, a data set's of the served sets;
- parameters carry markers (`x-...` keys set where they are declared) that become bounds here:
  a latent vector is an array of the served latent size within the widest latent range, a
  class index lies below the most classes of a served CVAE, a limit from the settings is a
  maximum, and so on;
- an operation whose query (or form) fields constrain one another says so with `x-one-of`: its
  query becomes one exploded object parameter with those cases as `oneOf`;
- an uploaded file is a part of the image media types the server decodes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.checkpoints.served import ServedModel
from app.inference import DataSets
from app.settings import Settings
from app.web.deps import Served, served_facts
from app.web.directions import ServedNames, served_names
from app.web.errors import BAD_BODY, NOT_FOUND, TOO_LARGE, ErrorBody, Responses

# the formats app.imaging.load_upload decodes
IMAGE_TYPES = "image/png, image/jpeg, image/gif, image/webp, image/bmp"

Schema = dict[str, Any]


def install(app: FastAPI) -> None:
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]


def openapi_schema(app: FastAPI) -> Schema:
    if app.openapi_schema is not None:
        return app.openapi_schema
    registry: Mapping[str, ServedModel] | None = getattr(app.state, "registry", None)
    settings: Settings = app.state.settings
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    finish(schema, registry or {}, settings, getattr(app.state, "datasets", None))
    if registry is not None:  # asked before the lifespan ran: build again once models are in
        app.openapi_schema = schema
    return schema


def _error_responses(responses: Responses) -> Schema:
    """`responses=` entries (app/web/errors.py) as the schema writes them."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        str(status): {"description": r["description"],
                      "content": {"application/json": {"schema": ref}}}
        for status, r in responses.items()
    }  # fmt: skip


def document_statuses(operation: Schema) -> None:
    """404 on every operation that names a model (its `name` comes from deps.get_model, marked
    there), 400 and 413 on every operation with a body; an operation's own entries win."""
    extra: Responses = {}
    if any(p["schema"].get("x-model-name") for p in operation["parameters"]):
        extra |= NOT_FOUND
    if "requestBody" in operation:
        extra |= BAD_BODY | TOO_LARGE
    operation["responses"] = {**_error_responses(extra), **operation["responses"]}


def finish(
    schema: Schema, registry: Mapping[str, ServedModel], settings: Settings,
    sets: DataSets | None = None,
) -> None:  # fmt: skip
    served = served_facts(registry, settings, sets)
    names = served_names(registry)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema()
    for operation in _operations(schema):
        document_statuses(operation)
        parameters = [
            _parameter(p, registry, served, settings, names) for p in operation["parameters"]
        ]
        operation["parameters"] = [p for p in parameters if p is not None]
        body = operation.get("requestBody", {}).get("content", {})
        form = body.get("multipart/form-data")
        if form is not None:
            _form(form, components, served, settings)
        one_of = operation.pop("x-one-of", None)
        if one_of is not None:
            if form is not None:
                components[_ref_name(form["schema"])]["oneOf"] = one_of
            else:
                _query_as_object(operation, [_distinct(case, names) for case in one_of])
    for component in components.values():  # JSON bodies (the forms are done)
        for name, prop in list(component.get("properties", {}).items()):
            if any(k.startswith("x-") for k in prop):
                component["properties"][name] = _resolve(prop, served, settings, query=False)
    _validation_error_detail(components)


def _operations(schema: Schema) -> Iterator[Schema]:
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.setdefault("parameters", [])
            yield operation


def _ref_name(schema: Schema) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def _without_null(schema: Schema) -> Schema:
    """`anyOf: [X, null]` → X: an optional query or form field is absent, never null (a query
    string cannot carry a JSON null)."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if "anyOf" in schema and len(options) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**options[0], **rest}
    return schema


def _latent_values(served: Served) -> Schema:
    return {"type": "number", "minimum": -served.latent_limit, "maximum": served.latent_limit}


def _resolve(schema: Schema, served: Served, settings: Settings, *, query: bool) -> Schema:
    """A field's schema with its markers turned into bounds. `query`: a query or form field,
    which is absent rather than null."""
    marks = {k: schema.pop(k) for k in list(schema) if k.startswith("x-")}
    if "x-latent-batch" in marks:  # decode's z: vectors of latent values
        fewest, most = served.latent_dims
        vector = {"type": "array", "items": _latent_values(served),
                  "minItems": fewest, "maxItems": most}  # fmt: skip
        return {**schema, "type": "array", "items": vector, "minItems": 1,
                "maxItems": settings.max_batch}  # fmt: skip
    if "x-class-index" in marks:
        index = {"type": "integer", "minimum": 0, "maximum": served.n_labels - 1}
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "type")}
        if query:
            return {**index, **rest}
        # in a JSON body null means "none"; without a served CVAE it is all a label can be
        return {"anyOf": [index, {"type": "null"}] if served.n_labels else [{"type": "null"}],
                **rest}  # fmt: skip
    if query:
        schema = _without_null(schema)
    if "x-maximum" in marks:
        schema["maximum"] = getattr(settings, marks["x-maximum"])
    if "x-dataset-index" in marks and served.dataset_images:
        schema["maximum"] = served.dataset_images - 1
    if "x-latent-index" in marks:
        schema["maximum"] = served.latent_dims[1] - 1
    if "x-latent-value" in marks:
        schema.update(_latent_values(served))
    if "x-mask" in marks:
        lengths = "|".join(f"[0-9a-fA-F]{{{size * size // 4}}}" for size in served.image_sizes)
        schema["pattern"] = f"^({lengths})$"
    return schema


def _parameter(
    parameter: Schema, registry: Mapping[str, ServedModel], served: Served, settings: Settings,
    names: ServedNames,
) -> Schema | None:  # fmt: skip
    schema = parameter["schema"]
    kind = schema.pop("x-direction-names", None)
    if kind is not None:  # a factor (exactly) or a class (any case) some served model names
        listed = names.factors if kind == "factors" else names.classes
        parameter["schema"] = {"type": "string", "title": schema.get("title", parameter["name"])}
        parameter["schema"] |= _any_case(listed) if kind == "classes" else {"enum": list(listed)}
        if not listed:
            parameter["schema"] = {"not": {}}  # no served model has one: never valid
        return parameter
    if schema.pop("x-model-name", False):
        if registry:
            schema["enum"] = list(registry)
        return parameter
    if schema.pop("x-data-set", False):
        # a query's empty value means the model's own images, as an absent one does
        empty = [""] if parameter["in"] == "query" else []
        parameter["schema"] = {**_without_null(schema), "enum": [*empty, *served.data_sets]}
        return parameter
    if schema.get("x-class-index") and served.n_labels == 0:
        return None  # no served model takes a class: the parameter is never valid
    if schema.pop("x-latent-vector", False):
        fewest, most = served.latent_dims
        parameter["schema"] = {"type": "array", "items": _latent_values(served),
                               "minItems": fewest, "maxItems": most,
                               "title": schema.get("title", parameter["name"])}  # fmt: skip
        # z=0.1,-2,3: one value per latent, comma-separated
        parameter.update(style="form", explode=False)
        return parameter
    parameter["schema"] = _resolve(schema, served, settings, query=True)
    return parameter


def _form(form: Schema, components: Schema, served: Served, settings: Settings) -> None:
    """A multipart body: each uploaded file is a part of an image media type; a class index
    that no served model takes is dropped, as in the query."""
    body = components[_ref_name(form["schema"])]
    properties = body.get("properties", {})
    for name, prop in list(properties.items()):
        if prop.get("x-class-index") and served.n_labels == 0:
            del properties[name]
        elif prop.pop("x-image", False):
            prop["maxLength"] = settings.max_upload_bytes
            form.setdefault("encoding", {})[name] = {"contentType": IMAGE_TYPES}
        else:
            properties[name] = _resolve(prop, served, settings, query=True)


def _any_case(words: tuple[str, ...]) -> Schema:
    """A string equal to one of `words` but for case: JSON Schema's patterns have no flags."""
    special = set("^$\\.*+?()[]{}|/")

    def letter(c: str) -> str:
        if c.lower() != c.upper():
            return f"[{c.lower()}{c.upper()}]"
        return "\\" + c if c in special else c

    return {"pattern": "^(" + "|".join("".join(map(letter, w)) for w in words) + ")$"}


def _distinct(case: Schema, names: ServedNames) -> Schema:
    """`x-distinct: [a, b]` in a case of `x-one-of`: fields a and b name different classes (any
    case: "Heart" and "heart" are one)."""
    fields: list[str] = case.get("x-distinct") or []
    case = {k: v for k, v in case.items() if k != "x-distinct"}  # the route's own: not popped
    same = [{"properties": {f: _any_case((c,)) for f in fields}} for c in names.classes]
    return {**case, "allOf": [{"not": {"anyOf": same}}]} if fields and same else case


def _query_as_object(operation: Schema, one_of: list[Schema]) -> None:
    """Query parameters that constrain one another → one object parameter, exploded into the
    same `key=value` pairs, whose schema can say how (`oneOf`). Each field keeps its schema."""
    query = [p for p in operation["parameters"] if p["in"] == "query"]
    properties = {}
    for p in query:
        properties[p["name"]] = {**p["schema"]}
        if "description" in p:
            properties[p["name"]]["description"] = p["description"]
    fields: Schema = {"type": "object", "properties": properties, "oneOf": copy.deepcopy(one_of)}
    required = [p["name"] for p in query if p.get("required")]
    needed = all(case.get("required") for case in one_of)  # no case is met by no fields
    if required:
        fields["required"] = required
    operation["parameters"] = [p for p in operation["parameters"] if p["in"] != "query"] + [
        {"name": "query", "in": "query", "required": bool(required) or needed, "style": "form",
         "explode": True, "schema": fields,
         "description": "the query's fields (each `name=value`), and the cases they make"}
    ]  # fmt: skip


def _validation_error_detail(components: Schema) -> None:
    """422 bodies hold FastAPI's own validation errors (a list) or one of ours (a sentence)."""
    error = components.get("HTTPValidationError")
    if error is not None:
        listed = {k: v for k, v in error["properties"]["detail"].items() if k != "title"}
        error["properties"]["detail"] = {"title": "Detail", "anyOf": [{"type": "string"}, listed]}
