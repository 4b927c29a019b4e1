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


def test_governance_vectors_replay_to_the_published_registry() -> None:
    """The majority's events, replayed under the vector registry by the rules, bring exactly
    the published version into force (its digest, linked to the genesis); the events one
    agency short change nothing; both regenerate byte for byte."""
    from jointbus.schemas.ledger import Ledger
    from jointbus.schemas.lifecycle import Rules

    registry = Registry.model_validate(VECTORS["registry"])
    gov = VECTORS["governance"]
    assert registry.digest == gov["genesis_digest"]
    assert registry.quorum == gov["quorum"] == 5

    def replay(events: list[dict[str, object]]) -> Registry:
        ledger, rules = Ledger(registry), Rules()
        for offset, env in enumerate(events):
            topic = f"jointbus.outbox.{env['source'].removeprefix('urn:jointbus:')}"  # type: ignore[union-attr]
            outcome = ledger.decide(to_wire(env), topic, 0, offset, VECTOR_TIME, ledger.registry, rules)
            assert outcome.decision.accepted, outcome.decision
            ledger.commit(outcome)
        return ledger.registry

    in_force = replay(gov["majority"]["events"])
    assert in_force.digest == gov["majority"]["digest"]
    assert in_force.model_dump(mode="json") == gov["majority"]["registry"]
    assert in_force.previous == registry.digest
    assert replay(gov["one_too_few"]["events"]).version == gov["one_too_few"]["version_after"]
    assert build()["governance"] == gov
