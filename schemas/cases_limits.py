"""Conformance cases of the flood limit (docs/wire-format.md §7 "Open obligations"): no
agency holds more obligations open on another than the policy's ``open_per_pair``; the
``limits`` registry sets it to 2 so each case stays short.
"""

from __future__ import annotations

from typing import Any

from jointbus.schemas.cases_base import OK, CaseBook, example, refused
from jointbus.schemas.conformance import Step
from jointbus.schemas.errors import Reason

RULE = "§7 open obligations per pair"
LIMITS = "limits"


class LimitCases(CaseBook):
    """The cases of the open-obligations limit."""

    def _clue(self, sender: str = "sc-zigong", to: str = "cq-yongchuan") -> dict[str, Any]:
        body = self.clue(to=[to])
        if sender != "sc-zigong":
            body = self.forge.unsigned(
                sender, "clue.transferred", body["subject"], [to], example("clue.transferred")
            )
        return self.sign(body)

    def _answer(self, clue: dict[str, Any], family: str, payload: dict[str, Any]) -> dict[str, Any]:
        receiver, sender = clue["recipients"][0], clue["source"].removeprefix("urn:jointbus:")
        return self.sign(self.forge.unsigned(receiver, family, clue["subject"], [sender], payload))

    def _flood(self, n: int = 2) -> tuple[list[dict[str, Any]], list[Step]]:
        clues = [self._clue() for _ in range(n)]
        return clues, [self.route(c) for c in clues]

    def limits(self) -> None:
        """A flood refused at the limit; other pairs untouched; answered items free a slot."""
        too_many = refused(Reason.TOO_MANY_OPEN)
        _, steps = self._flood()
        self.add(
            "limit/clue/one-more-than-the-policy-allows",
            RULE,
            "one agency flooding another with clues it must acknowledge, then is alerted overdue for",
            *steps,
            self.route(self._clue(), too_many),
            registry=LIMITS,
        )
        _, steps = self._flood()
        self.add(
            "limit/clue/other-pairs-unaffected",
            RULE,
            "a flood that blocks other senders to the victim, or the flooder's other recipients",
            *steps,
            self.route(self._clue(sender="sc-luzhou")),
            self.route(self._clue(to="cq-dazu")),
            registry=LIMITS,
        )
        clues, steps = self._flood()
        returned = self._answer(clues[0], "clue.returned", example("clue.returned"))
        self.add(
            "limit/clue/returned-frees-a-slot",
            RULE,
            "a recipient that answered the flood still refused more work from the sender",
            *steps,
            self.route(returned),
            self.route(self._clue()),
            registry=LIMITS,
        )
        clues, steps = self._flood()
        refusal = {
            "event_id": clues[1]["id"],
            "event_type": clues[1]["type"],
            "status": "refused",
            "reason": "seal_broken",
        }
        self.add(
            "limit/clue/refused-delivery-frees-a-slot",
            RULE,
            "an undeliverable clue still counted against the pair",
            *steps,
            self.route(self._answer(clues[1], "receipt", refusal)),
            self.route(self._clue()),
            registry=LIMITS,
        )
        clues, steps = self._flood()
        ack = self._answer(clues[0], "clue.acknowledged", example("clue.acknowledged"))
        self.add(
            "limit/clue/acknowledged-stays-open",
            RULE,
            "a flooder getting past the limit because the recipient acknowledged (it is still open)",
            *steps,
            self.route(ack),
            self.route(self._clue(), too_many),
            registry=LIMITS,
        )
        issue = [
            self.sign(
                self.forge.unsigned(
                    "sc-yibin",
                    "rectification.issued",
                    self.subject("rectification"),
                    ["sc-zigong", "sc-luzhou"],
                    example("rectification.issued"),
                )
            )
            for _ in range(2)
        ]
        last = self.sign(
            self.forge.unsigned(
                "sc-yibin",
                "rectification.issued",
                self.subject("rectification"),
                ["sc-luzhou"],
                example("rectification.issued"),
            )
        )
        self.add(
            "limit/rectification/each-responsible-agency-counts",
            RULE,
            "rectification items piled on an agency past the limit by naming others beside it",
            *(self.route(e) for e in issue),
            self.route(last, too_many),
            registry=LIMITS,
        )
        invites = [self.sign(self.invitation()) for _ in range(3)]
        self.add(
            "limit/jointcheck/unanswered-invitations",
            RULE,
            "joint-check invitations piled on agencies that have not answered",
            self.route(invites[0]),
            self.route(invites[1]),
            self.route(invites[2], too_many),
            registry=LIMITS,
        )
        _, steps = self._flood()
        self.add(
            "limit/default-allows-more",
            RULE,
            "a limit applied where the policy sets none below the bus's default (200)",
            *steps,
            self.route(self._clue(), OK),
        )
