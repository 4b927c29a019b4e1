"""JSON Schema documents generated from the models, for implementers in other languages."""

from __future__ import annotations

import json
from typing import Any

from jointbus.schemas.catalog import CATALOG, KINDS
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.registry import Registry
from jointbus.schemas.sealing import SealedData
from jointbus.schemas.wiremodel import NoNullSchema

BASE_URI = "https://jointbus.org/schemas/"


def documents() -> dict[str, dict[str, Any]]:
    """Every schema file by name: envelope, sealed data, registry, one per event type."""
    docs: dict[str, dict[str, Any]] = {
        "envelope.schema.json": Envelope.model_json_schema(schema_generator=NoNullSchema),
        "sealed-data.schema.json": SealedData.model_json_schema(schema_generator=NoNullSchema),
        "registry.schema.json": Registry.model_json_schema(schema_generator=NoNullSchema),
    }
    for spec in CATALOG.values():
        doc = spec.model.model_json_schema(schema_generator=NoNullSchema)
        doc["description"] = (doc.get("description") or "").strip() + (
            " (sealed on the wire; this is the plaintext)" if spec.sensitive else ""
        )
        docs[f"{spec.type}.schema.json"] = doc
    for name, doc in docs.items():
        doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        doc["$id"] = BASE_URI + name
    return docs


def render(doc: dict[str, Any]) -> str:
    """The file text of a schema document (stable: sorted keys, two-space indent)."""
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


CATALOG_FILE = "CATALOG.md"


def catalog_markdown() -> str:
    """The event catalog as a table (``schemas/json/CATALOG.md``), generated from the kinds'
    modules so that it cannot fall behind them."""
    lines = [
        "# jointbus event catalog",
        "",
        "Generated from `schemas/families/` by `jointbus schemas write`; do not edit.",
        "",
        "| type | kind | sealed | published by | answered by a receipt | what it is |",
        "|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for spec in kind.events:
            doc = (spec.model.__doc__ or "").strip().splitlines()[0]
            upcast = " (read as the current version)" if spec.upcast is not None else ""
            lines.append(
                f"| `{spec.type}`{upcast} | {kind.name} | {'yes' if spec.sensitive else 'no'} "
                f"| {', '.join(spec.publishers)} | {'yes' if spec.answered else 'no'} | {doc} |"
            )
    return "\n".join(lines) + "\n"
