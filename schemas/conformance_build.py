"""The conformance suite's document (``schemas/vectors/conformance-v1.json``): every case,
checked against jointbus as it is built, the registries it uses, and the lifecycle tables
as data.
"""

from __future__ import annotations

import json
from typing import Any

from jointbus.schemas.cases_limits import LimitCases
from jointbus.schemas.cases_rules import RuleCases
from jointbus.schemas.cases_wire import WireCases
from jointbus.schemas.conformance import Case, Suite, reference_verdicts
from jointbus.schemas.transitions import CASTS, Cell, tables


class Builder(WireCases, RuleCases, LimitCases):
    """Every group of cases, in the order of the document."""

    def build(self) -> list[Case]:
        self.table_cells = tables(self.forge)
        for group in (
            self.json_text,
            self.envelope,
            self.signatures,
            self.keys,
            self.clock,
            self.rights,
            self.payloads,
            self.seals,
            self.lifecycle,
            self.lifecycle_rules,
            self.receipts,
            self.governance,
            self.limits,
            self.alerts,
            self.coverage,
            self.sealed_plaintexts,
            self.byte_bounds,
            self.impossible_times,
        ):
            group()
        return self.cases


def transition_data(cells: dict[str, list[Cell]]) -> dict[str, Any]:
    """The tables as data: per kind, its parties and one row per (status, event type)."""
    return {
        cast.kind: {
            "parties": cast.roles,
            "senders": {m.family: m.role for m in cast.moves},
            "transitions": [
                {"from": c.before, "event": c.move.family, "to": c.after}
                if c.after is not None
                else {"from": c.before, "event": c.move.family, "refused": c.reason}
                for c in cells[cast.kind]
            ],
        }
        for cast in CASTS
    }


def build_suite(previous: Any = None) -> tuple[Suite, dict[str, Any]]:
    """The suite and its JSON document (``previous``: the current file, for stable seals)."""
    builder = Builder(previous)
    cases = builder.build()
    suite = Suite(builder.registries, cases)
    for case in cases:  # the suite states what jointbus does: checked here, and by the tests
        got = reference_verdicts(case, suite.registries[case.registry])
        for index, (step, verdict) in enumerate(zip(case.steps, got, strict=True)):
            if not verdict.agrees_with(step.expect):
                raise AssertionError(
                    f"{case.name} step {index}: expected {step.expect}, jointbus says {verdict}"
                )
    document = {
        "description": "jointbus conformance suite v1: see docs/conformance.md",
        "format": 1,
        "keys": "every private key is SHA-256('jointbus test vector key ' + kid): "
        "an Ed25519 seed or an X25519 private key",
        "registries": {name: r.model_dump(mode="json") for name, r in builder.registries.items()},
        "lifecycle": transition_data(builder.table_cells),
        "cases": [c.as_json() for c in cases],
        "seals": dict(sorted(builder.forge.made.items())),
    }
    return suite, document


def render_suite(document: dict[str, Any]) -> str:
    """The suite file's text: one case per line group, readable in a diff."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"
