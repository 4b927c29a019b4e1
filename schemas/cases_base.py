"""The toolkit of the conformance cases: the suite's registries, the vector events, the
steps and how a case is recorded. ``schemas.cases_wire`` and ``schemas.cases_rules`` hold
the cases themselves; ``schemas.conformance_build`` assembles the document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from jointbus.schemas.b64 import b64e
from jointbus.schemas.catalog import CATALOG, CURRENT
from jointbus.schemas.conformance import Case, Step, Verdict
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.forge import Forge, previous_seals, signing_key
from jointbus.schemas.ids import format_time
from jointbus.schemas.registry import Member, Registry
from jointbus.schemas.signing import signing_input
from jointbus.schemas.transitions import ARRIVAL, Cell
from jointbus.schemas.vectors import VECTOR_TIME, seed, vector_federation, vector_key

T = VECTOR_TIME
OK = Verdict("accepted")
MS = timedelta(milliseconds=1)

Mutation = Callable[[bytes], bytes]


def refused(reason: str) -> Verdict:
    return Verdict.rejected(reason)


def registries() -> dict[str, Registry]:
    """``base``: the vector federation; ``keys``: sc-zigong and cq-yongchuan hold keys
    revoked, expired or not yet valid around the vector time; ``rights``: sc-zigong may
    publish only ``clue.*`` and receipts, and cq-dazu is suspended; ``limits``: at most 2
    obligations open per sender → recipient pair (``policy.open_per_pair``)."""
    base, _ = vector_federation()
    extra = [
        vector_key("sc-zigong#sig-2", revoked_at=T - timedelta(hours=1), revocation_reason="compromised"),
        vector_key("sc-zigong#sig-3", revoked_at=T + 500 * MS, revocation_reason="compromised"),
        vector_key("sc-zigong#sig-4", revoked_at=ARRIVAL + timedelta(hours=1), revocation_reason="retired"),
        vector_key("sc-zigong#sig-5", not_before=T + timedelta(days=1)),
        vector_key("sc-zigong#sig-6", not_after=T - timedelta(days=1)),
        vector_key("sc-zigong#sig-7", not_after=T),
        vector_key("sc-zigong#sig-8", not_before=T),
        vector_key("cq-yongchuan#seal-2", revoked_at=T - timedelta(hours=1), revocation_reason="compromised"),
        vector_key("cq-yongchuan#seal-3", not_after=T - timedelta(days=1)),
    ]
    keys = base.model_copy(update={"keys": (*base.keys, *extra)})

    def narrowed(member: Member) -> Member:
        if member.id == "sc-zigong":
            return member.model_copy(update={"publish": ("clue.*", "receipt")})
        if member.id == "cq-dazu":
            return member.model_copy(update={"suspended": True})
        return member

    rights = base.model_copy(update={"members": tuple(narrowed(m) for m in base.members)})
    limits = base.model_copy(update={"policy": base.policy.model_copy(update={"open_per_pair": 2})})
    return {
        "base": base,
        "keys": Registry.model_validate(keys.model_dump(mode="json")),
        "rights": Registry.model_validate(rights.model_dump(mode="json")),
        "limits": Registry.model_validate(limits.model_dump(mode="json")),
    }


def example(family: str) -> dict[str, Any]:
    """The kind module's example payload of ``family``, as fresh JSON."""
    example: dict[str, Any] = json.loads(json.dumps(dict(CURRENT[family].example)))
    return example


def replacing(old: bytes, new: bytes) -> Mutation:
    def mutate(wire: bytes) -> bytes:
        if old not in wire:
            raise AssertionError(f"{old!r} is not in the vector's wire bytes")
        return wire.replace(old, new, 1)

    return mutate


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def with_trailing_bit(text: str) -> str:
    """Another base64url text for the same bytes: the lowest unused bit of the last
    character set (canonical texts leave the unused bits zero)."""
    return text[:-1] + _B64URL[_B64URL.index(text[-1]) + 1]


def sign_exactly(body: dict[str, Any], kid: str) -> dict[str, Any]:
    """Sign ``body`` as it is, nulls included (``sign_envelope`` would drop them)."""
    signed = dict(body, sigkeyid=kid)
    signed["signature"] = b64e(signing_key(kid).sign(signing_input(signed)))
    return signed


class CaseBook:
    """Collects the cases; one forge, so every event id in the suite is distinct."""

    def __init__(self, previous: Any = None) -> None:
        self.registries = registries()
        self.forge = Forge(self.registries["base"], previous_seals(previous))
        self.cases: list[Case] = []
        self.subjects = 0
        self.table_cells: dict[str, list[Cell]] = {}

    # --- events -------------------------------------------------------------------------

    def subject(self, kind: str) -> str:
        self.subjects += 1
        return f"{kind}/v{self.subjects:04d}"

    def invitation(self, payload: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """A joint-check invitation, sc-yibin to sc-zigong and sc-neijiang (plain)."""
        to = kw.pop("to", ["sc-zigong", "sc-neijiang"])
        sender = kw.pop("sender", "sc-yibin")
        body = self.forge.unsigned(
            sender,
            "jointcheck.invited",
            self.subject("jointcheck"),
            to,
            payload or example("jointcheck.invited"),
            **kw,
        )
        return body

    def clue(self, to: list[str] | None = None, **kw: Any) -> dict[str, Any]:
        """A clue transfer, sc-zigong to cq-yongchuan (sealed)."""
        return self.forge.unsigned(
            "sc-zigong",
            "clue.transferred",
            self.subject("clue"),
            to or ["cq-yongchuan"],
            example("clue.transferred"),
            **kw,
        )

    def sign(self, body: dict[str, Any], kid: str | None = None) -> dict[str, Any]:
        return self.forge.sign(body, kid)

    # --- steps and cases ----------------------------------------------------------------

    @staticmethod
    def route(
        env: dict[str, Any] | bytes,
        expect: Verdict = OK,
        *,
        outbox: str | None = None,
        mutate: Mutation | None = None,
        **kw: Any,
    ) -> Step:
        wire = env if isinstance(env, bytes) else to_wire(env)
        if mutate is not None:
            wire = mutate(wire)
        sender = outbox or (
            env["source"].removeprefix("urn:jointbus:") if isinstance(env, dict) else "sc-yibin"
        )
        return Step("route", wire, expect, outbox=sender, **kw)

    @staticmethod
    def receive(env: dict[str, Any], agency: str, expect: Verdict, kid: str | None = None) -> Step:
        kid = kid or f"{agency}#seal-1"
        return Step("receive", to_wire(env), expect, agency=agency, kid=kid, private_key=b64e(seed(kid)))

    def add(
        self,
        name: str,
        rule: str,
        attack: str,
        *steps: Step,
        registry: str = "base",
        received_at: datetime = ARRIVAL,
    ) -> None:
        self.cases.append(Case(name, rule, attack, registry, format_time(received_at), tuple(steps)))

    def under(self, registry: str) -> Forge:
        self.forge.registry = self.registries[registry]
        return self.forge

    # --- the groups ---------------------------------------------------------------------


def example_version(family: str, version: int) -> dict[str, Any]:
    spec = next(s for s in CATALOG.values() if s.family == family and s.version == version)
    example: dict[str, Any] = json.loads(json.dumps(dict(spec.example)))
    return example
