"""One JSON form for every object of the wire contract: optional fields are omitted, never
``null``.

Two readings of the same event must not both verify: ``{"position": null}`` and ``{}``
canonicalize to different bytes, and a reader that treats them alike invites disagreement.
So a wire model refuses an explicit ``null`` on input, omits absent fields on output, and
its JSON Schema (``NoNullSchema``) shows optional fields without a ``null`` branch.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, ValidationError, model_serializer
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema


def null_path(data: Any, where: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first ``null`` inside a JSON value is (``()``: the value itself), or None."""
    if data is None:
        return where
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        found = null_path(value, (*where, key))
        if found is not None:
            return found
    return None


def null_error(title: str, data: Any) -> ValidationError | None:
    """A validation error at the first ``null`` inside ``data``, or None."""
    where = null_path(data)
    if where is None:
        return None
    detail = PydanticCustomError("null", "optional fields are omitted, never null")
    return ValidationError.from_exception_data(title, [{"type": detail, "loc": where, "input": None}])


def refuse_nulls(data: Any) -> Any:
    """``data`` unchanged, or a ``ValueError`` naming the first ``null`` inside it.

    A model validator in "before" mode; only on models validated from Python objects (a
    "before" validator would make a model read from JSON in strict mode refuse ISO dates).
    """
    where = null_path(data)
    if where is not None:
        path = ".".join(str(k) for k in where) or "(root)"
        raise ValueError(f"optional fields are omitted, never null: {path}")
    return data


def refuse_top_nulls(data: Any) -> Any:
    """``refuse_nulls`` for the attributes of ``data`` only: for the envelope, whose ``data``
    is checked deeply by its payload or sealed model (one walk per value, not two)."""
    if isinstance(data, dict):
        nulls = sorted(str(k) for k, v in data.items() if v is None)
        if nulls:
            raise ValueError(f"optional fields are omitted, never null: {', '.join(nulls)}")
    return data


class WireModel(BaseModel):
    """Base of the contract's objects: closed, immutable, and dumped without ``null``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_serializer(mode="wrap")
    def _omit_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        return {k: v for k, v in dumped.items() if v is not None}


class NoNullSchema(GenerateJsonSchema):
    """JSON Schema of wire models: an optional field is its type, not ``type | null``, and a
    ``None`` default is no default (the field is simply not required)."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None:
            del json_schema["default"]
        return json_schema
