"""Test vectors of the wire contract: fixed keys and events, their exact canonical bytes and
signatures, and a sealed payload that opens. Implementers in Java or Go check against
``schemas/vectors/wire-v1.json``; the test suite checks the file against this code.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jointbus.schemas.b64 import b64e
from jointbus.schemas.compose import compose
from jointbus.schemas.governance import ChairPassed, MemberSuspended, next_version, proposal
from jointbus.schemas.keys import FIRST_CHAIR, Keyring, members
from jointbus.schemas.registry import KeyRecord, Registry
from jointbus.schemas.signing import signing_input

VECTOR_TIME = datetime(2026, 3, 1, 8, 30, 0, tzinfo=UTC)
WIRE_FILE = "wire-v1.json"
PARTIES = ("sc-zigong", "cq-yongchuan", "sc-luzhou", "sc-yibin")


def seed(kid: str) -> bytes:
    """The fixed private seed of a test-vector key: SHA-256 of a label."""
    return hashlib.sha256(f"jointbus test vector key {kid}".encode()).digest()


def vector_key(kid: str, **window: datetime | str) -> KeyRecord:
    """The registry record of vector key ``kid`` (``#sig-``: Ed25519, ``#seal-``: X25519),
    valid from 2026-01-01 unless ``window`` says otherwise (``not_after``, ``revoked_at``...)."""
    sign = "#sig-" in kid
    private = Ed25519PrivateKey if sign else X25519PrivateKey
    public = private.from_private_bytes(seed(kid)).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    fields: dict[str, object] = {
        "kid": kid,
        "owner": kid.split("#")[0],
        "purpose": "sign" if sign else "seal",
        "algorithm": "Ed25519" if sign else "X25519",
        "public_key": b64e(public),
        "not_before": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return KeyRecord.model_validate(fields | window)


def vector_federation() -> tuple[Registry, dict[str, Keyring]]:
    """A federation whose keys are all derived from fixed seeds."""
    records, rings = [], {}
    for member in members():
        ring = Keyring(owner=member.id, keys={})
        for purpose, tag in (("sign", "sig"), ("seal", "seal")):
            if member.kind == "service" and purpose == "seal":
                continue
            kid = f"{member.id}#{tag}-1"
            records.append(vector_key(kid))
            ring.keys[kid] = b64e(seed(kid))
        rings[member.id] = ring
    registry = Registry(
        version=1,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        members=members(),
        keys=tuple(records),
        chair=FIRST_CHAIR,
    )
    return registry, rings


def build(previous: Any = None) -> dict[str, Any]:
    """Build the vector document. HPKE is randomized: the sealed case of ``previous`` (the
    current file) is kept when it still opens to the same plaintext."""
    registry, rings = vector_federation()
    plain = compose(
        keyring=rings["sc-zigong"],
        registry=registry,
        event_type="jointcheck.invited",
        subject="jointcheck/019ca884-c740-7000-8000-000000000001",
        recipients=["cq-yongchuan", "sc-luzhou"],
        payload={
            "project": {
                "name": "向家坝灌区北总干渠",
                "location": "自贡市",
                "kind": "irrigation canal",
            },
            "scope": "工程建设资金使用与质量监督 (funds and quality)",
            "start_date": "2026-04-01",
            "end_date": "2026-04-10",
            "staff_requested": {"cq-yongchuan": 2, "sc-luzhou": 1},
            "respond_by": "2026-03-15",
        },
        now=VECTOR_TIME,
        event_id="019ca884-c740-7000-8000-000000000001",
    )
    clue_plaintext = {
        "title": "某项目负责人涉嫌违规插手工程分包",
        "summary": "Example clue for the test vector.",
        "persons": [{"name": "张某", "position": "项目经理", "unit": "某建设公司"}],
        "allegations": ["违规插手工程分包"],
        "jurisdiction_basis": "被反映人系永川区管理干部",
        "acknowledge_by": "2026-03-08",
    }
    from jointbus.schemas.forge import Forge, previous_seals  # the forge builds on this module

    forge = Forge(registry, previous_seals(previous))
    sealed = forge.sign(
        forge.unsigned(
            "sc-zigong",
            "clue.transferred",
            "clue/019ca884-c740-7000-8000-000000000002",
            ["cq-yongchuan"],
            clue_plaintext,
            event_id="019ca884-c740-7000-8000-000000000002",
        )
    )
    return {
        "description": "jointbus wire contract v1 test vectors; see docs/wire-format.md",
        "private_seeds": {"derivation": "SHA-256('jointbus test vector key ' + kid)"},
        "registry": registry.model_dump(mode="json"),
        "cases": [
            {
                "name": "plain joint-check invitation",
                "envelope": plain,
                "signing_input_utf8": signing_input(plain).decode(),
                "signing_input_sha256": hashlib.sha256(signing_input(plain)).hexdigest(),
                "signature": plain["signature"],
            },
            {
                "name": "sealed clue transfer, opened by cq-yongchuan#seal-1",
                "envelope": sealed,
                "signing_input_utf8": signing_input(sealed).decode(),
                "signing_input_sha256": hashlib.sha256(signing_input(sealed)).hexdigest(),
                "signature": sealed["signature"],
                "opens_as": clue_plaintext,
                "opener": "cq-yongchuan#seal-1",
            },
        ],
        "governance": governance_vectors(registry, rings),
    }


def governance_vectors(registry: Registry, rings: dict[str, Keyring]) -> dict[str, Any]:
    """The registry chain (docs/wire-format.md §5.1): the genesis digest, a change signed by
    a majority (in force: its new version and digest) and one signed by one agency too few
    (nothing changes). Deterministic: fixed ids and times, Ed25519 signatures."""
    voters = list(registry.voters)

    def signed(agency: str, family: str, payload: dict[str, Any], n: int) -> dict[str, Any]:
        return compose(
            keyring=rings[agency],
            registry=registry,
            event_type=family,
            subject="governance/registry",
            recipients=[a for a in voters if a != agency],
            payload=payload,
            now=VECTOR_TIME,
            event_id=f"019ca884-c740-7000-8000-{n:012d}",
        )

    def decided(proposer: str, changes: list[Any], approvers: list[str], n: int) -> list[dict[str, Any]]:
        payload = proposal(registry, changes, VECTOR_TIME, "联席会议决定 (decided by the joint meeting)")
        first = signed(proposer, "governance.proposed", payload, n)
        vote = {"proposal_id": first["id"], "new_digest": payload["new_digest"]}
        return [first, *(signed(a, "governance.approved", vote, n + 1 + i) for i, a in enumerate(approvers))]

    majority = decided("cq-rongchang", [ChairPassed(chair="sc-yibin")], voters[:4], 101)
    too_few = decided("sc-zigong", [MemberSuspended(member="cq-dazu")], voters[1:4], 201)
    in_force = next_version(registry, [ChairPassed(chair="sc-yibin")], VECTOR_TIME)
    return {
        "genesis_digest": registry.digest,
        "quorum": registry.quorum,
        "majority": {
            "events": majority,
            "registry": in_force.model_dump(mode="json"),
            "digest": in_force.digest,
        },
        "one_too_few": {"events": too_few, "version_after": registry.version},
    }


def render(document: dict[str, Any]) -> str:
    """The file text of a vector document (stable: two-space indent, UTF-8 as is)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
