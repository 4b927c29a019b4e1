"""The published test vectors and JSON Schema files agree with the code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jointbus.schemas.b64 import b64e
from jointbus.schemas.catalog import parse_payload
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.jsonschema import CATALOG_FILE, catalog_markdown, documents, render
from jointbus.schemas.registry import Registry
from jointbus.schemas.sealing import open_sealed
from jointbus.schemas.signing import signing_input
from jointbus.schemas.vectors import VECTOR_TIME, build, seed, vector_federation
from jointbus.schemas.verify import verify_event

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "schemas" / "vectors" / "wire-v1.json").read_text(encoding="utf-8"))


def test_vector_registry_is_derived_from_the_published_seeds() -> None:
    """The registry in the file is what the documented seed derivation produces."""
    registry, _ = vector_federation()
    assert VECTORS["registry"] == registry.model_dump(mode="json")


def test_plain_vector_has_exact_canonical_bytes_and_signature() -> None:
    """Canonical bytes and the (deterministic) Ed25519 signature match byte for byte."""
    case = VECTORS["cases"][0]
    assert signing_input(case["envelope"]).decode() == case["signing_input_utf8"]
    assert hashlib.sha256(case["signing_input_utf8"].encode()).hexdigest() == case["signing_input_sha256"]
    key = Ed25519PrivateKey.from_private_bytes(seed(case["envelope"]["sigkeyid"]))
    assert b64e(key.sign(case["signing_input_utf8"].encode())) == case["signature"]
    regenerated = build()["cases"][0]
    assert regenerated == case


def test_every_vector_verifies_against_its_registry() -> None:
    """Each vector envelope passes full verification at its own time."""
    registry = Registry.model_validate(VECTORS["registry"])
    for case in VECTORS["cases"]:
        verify_event(to_wire(case["envelope"]), registry, received_at=VECTOR_TIME, check_skew=False)
        assert hashlib.sha256(signing_input(case["envelope"])).hexdigest() == case["signing_input_sha256"]


def test_sealed_vector_opens_with_the_published_key() -> None:
    """The sealed clue opens with the recipient's vector key to the recorded plaintext."""
    case = VECTORS["cases"][1]
    _, rings = vector_federation()
    env = case["envelope"]
    opened = open_sealed(env["data"], env["id"], "cq-yongchuan", rings["cq-yongchuan"].openers())
    assert json.loads(opened) == case["opens_as"]
    parse_payload(env["type"], case["opens_as"])


def test_json_schema_files_are_in_sync_with_the_models() -> None:
    """schemas/json holds exactly the generated files (run `jointbus schemas write`)."""
    directory = ROOT / "schemas" / "json"
    expected = {name: render(doc) for name, doc in documents().items()}
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in directory.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "schema files added or missing"
    stale = [name for name in expected if on_disk[name] != expected[name]]
    assert not stale, f"stale schema files: {stale}; run `jointbus schemas write`"
    catalog = (directory / CATALOG_FILE).read_text(encoding="utf-8")
    assert catalog == catalog_markdown(), "schemas/json/CATALOG.md is stale; run `jointbus schemas write`"
