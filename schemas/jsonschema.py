"""JSON Schema documents generated from the models, for implementers in other languages."""

from __future__ import annotations

import json
from typing import Any

from jointbus.schemas.catalog import CATALOG
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.registry import Registry
from jointbus.schemas.sealing import SealedData

BASE_URI = "https://jointbus.org/schemas/"


def documents() -> dict[str, dict[str, Any]]:
    """Every schema file by name: envelope, sealed data, registry, one per event type."""
    docs: dict[str, dict[str, Any]] = {
        "envelope.schema.json": Envelope.model_json_schema(),
        "sealed-data.schema.json": SealedData.model_json_schema(),
        "registry.schema.json": Registry.model_json_schema(),
    }
    for spec in CATALOG.values():
        doc = spec.model.model_json_schema()
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
