"""Conformance cases of the lifecycle: the transition tables, who may act, receipts, the
registry chain, and a positive case for every event type and version.
"""

from __future__ import annotations

import json
from typing import Any

from jointbus.schemas.cases_base import (
    OK,
    CaseBook,
    T,
    example,
    refused,
)
from jointbus.schemas.catalog import CATALOG
from jointbus.schemas.checkpoints import ORIGIN, Checkpoint, sign_checkpoint
from jointbus.schemas.conformance import Verdict
from jointbus.schemas.errors import Reason
from jointbus.schemas.forge import signing_key
from jointbus.schemas.governance import (
    ChairPassed,
    Change,
    KeyRevoked,
    MemberSuspended,
    next_version,
    proposal,
)
from jointbus.schemas.ids import uuid7_from
from jointbus.schemas.transitions import CASTS, Move


class RuleCases(CaseBook):
    """The cases of docs/wire-format.md §5.1, §6 and §7."""

    def lifecycle(self) -> None:
        """The transition tables: every event type in every reachable status."""
        for kind, cells in self.table_cells.items():
            for cell in cells:
                subject = self.subject(kind)
                steps = [self.route(self._move(m, subject)) for m in cell.path]
                expect = OK if cell.after is not None else refused(str(cell.reason))
                steps.append(self.route(self._move(cell.move, subject), expect))
                name = f"lifecycle/{kind}/{cell.before or 'new'}/{cell.move.family.split('.', 1)[1]}"
                wrong = "refuses" if cell.after is not None else "accepts"
                attack = f"a bus that {wrong} {cell.move.family} when the {kind} is {cell.before or 'new'}"
                self.add(name, f"§7 lifecycle: {kind}", attack, *steps)

    def _move(
        self, move: Move, subject: str, payload: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        sender = kw.pop("sender", move.sender)
        to = kw.pop("to", list(move.to))
        return self.sign(
            self.forge.unsigned(sender, move.family, subject, to, payload or example(move.family), **kw)
        )

    def lifecycle_rules(self) -> None:
        """Who may act, and on what: the rules the status tables do not show."""
        casts = {c.kind: c for c in CASTS}

        def story(
            name: str, kind: str, attack: str, before: list[str], last: str, reason: str | None, **kw: Any
        ) -> None:
            cast = casts[kind]
            moves = {m.family.split(".", 1)[1]: m for m in cast.moves}
            subject = self.subject(kind)
            steps = [self.route(self._move(moves[b], subject)) for b in before]
            payload = kw.pop("payload", None)
            env = self._move(moves[last], subject, payload, **kw)
            steps.append(self.route(env, OK if reason is None else refused(reason)))
            self.add(name, f"§7 lifecycle: {kind}", attack, *steps)

        na, bt = Reason.NOT_AUTHORIZED, Reason.BAD_TRANSITION
        story(
            "rule/clue/two-receivers",
            "clue",
            "one clue transferred to two agencies",
            [],
            "transferred",
            bt,
            to=["cq-yongchuan", "cq-dazu"],
        )
        story(
            "rule/clue/outsider-accepts",
            "clue",
            "an agency taking on a clue sent to another",
            ["transferred"],
            "accepted",
            na,
            sender="sc-luzhou",
            to=["sc-zigong"],
        )
        story(
            "rule/clue/follow-up-leaked",
            "clue",
            "a clue follow-up copied to a third agency",
            ["transferred"],
            "acknowledged",
            na,
            to=["sc-zigong", "sc-luzhou"],
        )
        invited = example("jointcheck.invited")
        story(
            "rule/jointcheck/staff-from-non-invitee",
            "jointcheck",
            "staff demanded of an agency not invited",
            [],
            "invited",
            na,
            payload=invited | {"staff_requested": {"cq-dazu": 2}},
        )
        story(
            "rule/jointcheck/uninvited-response",
            "jointcheck",
            "an uninvited agency joining a check",
            ["invited"],
            "responded",
            na,
            sender="cq-dazu",
            to=["sc-yibin"],
        )
        story(
            "rule/jointcheck/second-response",
            "jointcheck",
            "an invitee answering twice (joined and declined)",
            ["invited", "responded"],
            "responded",
            bt,
        )
        story(
            "rule/jointcheck/response-misses-convener",
            "jointcheck",
            "a response the convener never sees",
            ["invited"],
            "responded",
            na,
            to=["sc-neijiang"],
        )
        story(
            "rule/jointcheck/joins-without-staff",
            "jointcheck",
            "a promise of help naming nobody",
            ["invited"],
            "responded",
            bt,
            payload={"accepted": True},
        )
        story(
            "rule/jointcheck/declines-without-reason",
            "jointcheck",
            "a refusal with no reason",
            ["invited"],
            "responded",
            bt,
            payload={"accepted": False},
        )
        story(
            "rule/jointcheck/findings-by-outsider",
            "jointcheck",
            "findings reported by an agency not taking part",
            ["invited"],
            "findings_reported",
            na,
            sender="sc-neijiang",
            to=["sc-yibin", "sc-zigong"],
        )
        issued = example("rectification.issued")
        story(
            "rule/rectification/deadline-ends-with-its-china-day",
            "rectification",
            "an item refused on its last day (a deadline passes at 24:00 +08:00 of its date)",
            [],
            "issued",
            None,
            payload=issued | {"deadline": "2026-03-01"},
        )
        story(
            "rule/rectification/deadline-passed",
            "rectification",
            "an item issued already overdue",
            [],
            "issued",
            bt,
            payload=issued | {"deadline": "2026-02-28"},
        )
        story(
            "rule/rectification/issuer-reports-progress",
            "rectification",
            "the issuer reporting the other side's progress",
            ["issued"],
            "progress_reported",
            na,
            sender="sc-zigong",
            to=["cq-yongchuan"],
        )
        story(
            "rule/rectification/completion-misses-issuer",
            "rectification",
            "a completion the issuer never sees",
            ["issued"],
            "completion_reported",
            na,
            to=["sc-luzhou"],
        )
        story(
            "rule/rectification/reopened-overdue",
            "rectification",
            "an item reopened with a deadline already past",
            ["issued", "completion_reported"],
            "reopened",
            bt,
            payload=example("rectification.reopened") | {"new_deadline": "2026-02-28"},
        )
        story(
            "rule/bulletin/withdrawn-by-reader",
            "bulletin",
            "an agency withdrawing another's bulletin",
            ["posted"],
            "withdrawn",
            na,
            sender="cq-dazu",
            to=["sc-luzhou"],
        )
        story(
            "rule/bulletin/withdrawal-misses-reader",
            "bulletin",
            "a withdrawal some readers never see",
            ["posted"],
            "withdrawn",
            na,
            to=["sc-zigong"],
        )
        env = self.sign(
            self.forge.unsigned(
                "sc-luzhou",
                "bulletin.posted",
                self.subject("jointcheck"),
                ["cq-dazu"],
                example("bulletin.posted"),
            )
        )
        self.add(
            "rule/subject-of-another-kind",
            "§7 lifecycle",
            "an event squatting another kind's subject",
            self.route(env, refused(Reason.BAD_TRANSITION)),
        )

    def receipts(self) -> None:
        """§7 receipts: from a recipient of an accepted event, to its sender, naming it."""
        rule = "§7 receipts"

        def receipt(
            sender: str, to: list[str], subject: str, answered: dict[str, Any], **fields: Any
        ) -> dict[str, Any]:
            payload = {
                "event_id": answered["id"],
                "event_type": answered["type"],
                "status": "opened",
            } | fields
            return self.sign(self.forge.unsigned(sender, "receipt", subject, to, payload))

        no_event = {"id": uuid7_from(T, b"no such event")}
        refusal = {"status": "refused", "reason": "seal_broken"}
        variants: list[tuple[str, str, str, list[str], dict[str, Any], dict[str, Any], str | None]] = [
            ("receipt/opened", "a recipient's receipt refused", "cq-yongchuan", ["sc-zigong"], {}, {}, None),
            (
                "receipt/refused-with-reason",
                "an undeliverable clue counted as delivered",
                "cq-yongchuan",
                ["sc-zigong"],
                {},
                refusal,
                None,
            ),
            (
                "receipt/unknown-event",
                "a receipt for an event that never was",
                "cq-yongchuan",
                ["sc-zigong"],
                no_event,
                {},
                Reason.BAD_TRANSITION,
            ),
            (
                "receipt/by-non-recipient",
                "an agency confirming delivery of what it never received",
                "sc-luzhou",
                ["sc-zigong"],
                {},
                {},
                Reason.NOT_AUTHORIZED,
            ),
            (
                "receipt/to-a-third-agency",
                "a receipt leaking who received what",
                "cq-yongchuan",
                ["sc-luzhou"],
                {},
                {},
                Reason.NOT_AUTHORIZED,
            ),
            (
                "receipt/wrong-type",
                "a receipt for another kind of event than the one named",
                "cq-yongchuan",
                ["sc-zigong"],
                {"type": "org.jointbus.clue.accepted.v1"},
                {},
                Reason.BAD_TRANSITION,
            ),
        ]
        for name, attack, sender, to, answered, fields, reason in variants:
            clue = self.sign(self.clue())
            expect = OK if reason is None else refused(reason)
            answer = receipt(sender, to, clue["subject"], clue | answered, **fields)
            self.add(name, rule, attack, self.route(clue), self.route(answer, expect))
        clue = self.sign(self.clue())
        first = receipt(
            "cq-yongchuan", ["sc-zigong"], clue["subject"], clue, status="refused", reason="seal_broken"
        )
        second = receipt(
            "cq-yongchuan", ["sc-zigong"], clue["subject"], clue, status="refused", reason="seal_broken"
        )
        self.add(
            "receipt/refused-twice",
            rule,
            "one refusal counted twice",
            self.route(clue),
            self.route(first),
            self.route(second, refused(Reason.BAD_TRANSITION)),
        )

    def governance(self) -> None:
        """§5.1 the registry chain: a majority changes it, nothing less."""
        rule = "§5.1 governance"
        registry = self.registries["base"]
        voters = list(registry.voters)
        change: list[Change] = [ChairPassed(chair="sc-yibin")]

        def signed(
            agency: str, family: str, payload: dict[str, Any], to: list[str] | None = None
        ) -> dict[str, Any]:
            to = to if to is not None else [a for a in voters if a != agency]
            return self.sign(self.forge.unsigned(agency, family, "governance/registry", to, payload))

        prop = proposal(registry, change, T, "联席会议决定 (decided by the joint meeting)")
        first = signed("cq-rongchang", "governance.proposed", prop)
        vote = {"proposal_id": first["id"], "new_digest": prop["new_digest"]}
        approvals = [signed(a, "governance.approved", vote) for a in voters[:4]]
        chair = str(registry.chair)
        meeting = example("meeting.held") | {"chair": "sc-yibin"}
        by_new = self.sign(
            self.forge.unsigned(
                "sc-yibin",
                "meeting.held",
                self.subject("meeting"),
                [a for a in voters if a != "sc-yibin"],
                meeting,
            )
        )
        by_old = self.sign(
            self.forge.unsigned(
                chair,
                "meeting.held",
                self.subject("meeting"),
                [a for a in voters if a != chair],
                example("meeting.held") | {"chair": chair},
            )
        )
        self.add(
            "governance/majority-passes-the-chair",
            rule,
            "a registry change by fewer than a majority, or a chair kept after the majority passed it on",
            self.route(first),
            *(self.route(a) for a in approvals),
            self.route(by_old, refused(Reason.NOT_AUTHORIZED)),
            self.route(by_new),
        )
        first = signed("cq-rongchang", "governance.proposed", prop)
        vote = {"proposal_id": first["id"], "new_digest": prop["new_digest"]}
        again = signed(voters[0], "governance.approved", vote)
        self.add(
            "governance/approves-twice",
            rule,
            "one agency counted twice toward a majority",
            self.route(first),
            self.route(signed(voters[0], "governance.approved", vote)),
            self.route(again, refused(Reason.BAD_TRANSITION)),
        )
        first = signed("cq-rongchang", "governance.proposed", prop)
        other = {"proposal_id": first["id"], "new_digest": "0" * 64}
        self.add(
            "governance/approves-another-version",
            rule,
            "an approval counted for a registry it did not sign",
            self.route(first),
            self.route(signed(voters[0], "governance.approved", other), refused(Reason.BAD_TRANSITION)),
        )
        stale = prop | {"base_version": 7}
        self.add(
            "governance/stale-base",
            rule,
            "a proposal on a registry no longer in force",
            self.route(signed("cq-rongchang", "governance.proposed", stale), refused(Reason.BAD_TRANSITION)),
        )
        self.add(
            "governance/not-every-voter",
            rule,
            "a registry change some voters never see",
            self.route(
                signed(
                    "cq-rongchang",
                    "governance.proposed",
                    prop,
                    to=[a for a in voters if a != "cq-rongchang"][:3],
                ),
                refused(Reason.NOT_AUTHORIZED),
            ),
        )
        revoke = {"kid": "sc-zigong#sig-1", "reason": "compromised"}
        self.add(
            "governance/revokes-anothers-key",
            rule,
            "one agency cutting another off by revoking its key",
            self.route(signed("cq-dazu", "governance.key_revoked", revoke), refused(Reason.NOT_AUTHORIZED)),
        )
        own = signed("sc-zigong", "governance.key_revoked", revoke)
        after = self.sign(
            self.invitation(
                sender="sc-zigong",
                to=["sc-yibin", "sc-neijiang"],
                payload=example("jointcheck.invited") | {"staff_requested": {"sc-yibin": 1}},
            )
        )
        self.add(
            "governance/own-key-revoked-at-once",
            rule,
            "a stolen key still accepted after its owner revoked it",
            self.route(own),
            self.route(after, refused(Reason.KEY_REVOKED)),
        )
        wrong = prop | {"new_digest": "0" * 64}
        self.add(
            "governance/new-digest-not-produced",
            rule,
            "approvals collected for a registry the changes do not produce",
            self.route(signed("cq-rongchang", "governance.proposed", wrong), refused(Reason.BAD_TRANSITION)),
        )
        first = signed("cq-rongchang", "governance.proposed", prop)
        vote = {"proposal_id": first["id"], "new_digest": prop["new_digest"]}
        backers = [a for a in voters if a != "cq-rongchang"][:3]
        by_would_be = self.sign(
            self.forge.unsigned("sc-yibin", "meeting.held", self.subject("meeting"),
                                [a for a in voters if a != "sc-yibin"], meeting)
        )  # fmt: skip
        self.add(
            "governance/one-too-few",
            rule,
            "a registry change in force with four of eight agencies",
            self.route(first),
            *(self.route(signed(a, "governance.approved", vote)) for a in backers),
            self.route(by_would_be, refused(Reason.NOT_AUTHORIZED)),
        )
        forge = self.under("keys")
        newer = {"kid": "sc-zigong#sig-8", "reason": "compromised"}
        body = forge.unsigned("sc-zigong", "governance.key_revoked", "governance/registry",
                              [a for a in voters if a != "sc-zigong"], newer)  # fmt: skip
        self.add(
            "governance/old-key-revokes-newer",
            rule,
            "a stolen old key cutting its owner off by revoking the replacement",
            self.route(forge.sign(body, "sc-zigong#sig-1"), refused(Reason.NOT_AUTHORIZED)),
            registry="keys",
        )
        self.under("base")
        self.undodgeable()

    def undodgeable(self) -> None:
        """§5.1 open proposals outlive self-revocations: only a majority closes them."""
        rule = "§5.1 governance: open proposals outlive self-revocations"
        registry = self.registries["base"]
        voters = list(registry.voters)

        def signed(agency: str, family: str, payload: dict[str, Any]) -> dict[str, Any]:
            to = [a for a in voters if a != agency]
            return self.sign(self.forge.unsigned(agency, family, "governance/registry", to, payload))

        def approval(agency: str, first: dict[str, Any]) -> dict[str, Any]:
            vote = {"proposal_id": first["id"], "new_digest": first["data"]["new_digest"]}
            return signed(agency, "governance.approved", vote)

        def by_zigong() -> dict[str, Any]:
            invited = example("jointcheck.invited") | {"staff_requested": {"sc-yibin": 1}}
            return self.sign(
                self.invitation(sender="sc-zigong", to=["sc-yibin", "sc-neijiang"], payload=invited)
            )

        suspend: list[Change] = [MemberSuspended(member="sc-zigong")]
        dodge = {"kid": "sc-zigong#seal-1", "reason": "lost"}
        first = signed("cq-rongchang", "governance.proposed", proposal(registry, suspend, T, "暂停自贡市"))
        self.add(
            "governance/suspension-outlives-a-self-revocation",
            rule,
            "a member voiding its own suspension, four signatures in, by revoking one of its keys alone",
            self.route(first),
            *(self.route(approval(a, first)) for a in ["sc-luzhou", "sc-neijiang", "sc-yibin"]),
            self.route(signed("sc-zigong", "governance.key_revoked", dodge)),
            self.route(approval("cq-jiangjin", first)),
            self.route(by_zigong(), refused(Reason.NOT_AUTHORIZED)),
            self.route(approval("cq-dazu", first), refused(Reason.BAD_TRANSITION)),
        )
        both: list[Change] = [KeyRevoked(kid="cq-dazu#seal-1", at=T, reason="decided"), *suspend]
        first = signed("cq-rongchang", "governance.proposed", proposal(registry, both, T, "暂停自贡市"))
        self.add(
            "governance/moot-revocation-carried-forward",
            rule,
            "a proposal voided because a key it revokes was revoked by its owner meanwhile",
            self.route(first),
            *(self.route(approval(a, first)) for a in ["cq-dazu", "sc-luzhou", "sc-neijiang"]),
            self.route(signed("cq-dazu", "governance.key_revoked", {"kid": "cq-dazu#seal-1", "reason": "x"})),
            self.route(approval("sc-yibin", first)),
            self.route(by_zigong(), refused(Reason.NOT_AUTHORIZED)),
        )
        first = signed("cq-rongchang", "governance.proposed", proposal(registry, suspend, T, "暂停自贡市"))
        revoked = next_version(registry, [KeyRevoked(kid="sc-zigong#seal-1", at=T, reason="lost")], T)
        rival = signed(
            "sc-yibin", "governance.proposed", proposal(revoked, [ChairPassed(chair="sc-yibin")], T, "x")
        )
        self.add(
            "governance/backs-one-across-a-self-revocation",
            rule,
            "an agency backing two proposals at once because a self-revocation came between them",
            self.route(first),
            self.route(approval("sc-luzhou", first)),
            self.route(signed("sc-zigong", "governance.key_revoked", dodge)),
            self.route(rival),
            self.route(approval("sc-luzhou", rival), refused(Reason.BAD_TRANSITION)),
        )
        first = signed("cq-rongchang", "governance.proposed", proposal(registry, suspend, T, "暂停自贡市"))
        winner = signed(
            "sc-yibin", "governance.proposed", proposal(registry, [ChairPassed(chair="sc-yibin")], T, "x")
        )
        self.add(
            "governance/majority-closes-the-others",
            rule,
            "a proposal counted under the voters and quorum of a version a majority has replaced",
            self.route(first),
            self.route(winner),
            *(
                self.route(approval(a, winner))
                for a in ["sc-luzhou", "sc-neijiang", "cq-jiangjin", "cq-yongchuan"]
            ),
            self.route(approval("cq-dazu", first), refused(Reason.BAD_TRANSITION)),
        )

    def alerts(self) -> None:
        """Witness alerts: an equivocation is accepted only with evidence of a split view."""
        rule = "§7 log alerts"
        voters = list(self.registries["base"].voters)
        audit_key = signing_key("svc-audit#sig-1")

        def note(root: bytes) -> str:
            return sign_checkpoint(Checkpoint(ORIGIN, 12, root), audit_key)

        def alert(payload: dict[str, Any]) -> dict[str, Any]:
            to = [a for a in voters if a != "sc-neijiang"]
            return self.sign(
                self.forge.unsigned("sc-neijiang", "log.equivocation", self.subject("log"), to, payload)
            )

        one, other = note(bytes(32)), note(bytes([1]) * 32)
        evidence = {"origin": ORIGIN, "size": 12, "checkpoints": [one, other]}
        self.add(
            "rule/log/equivocation-with-evidence",
            rule,
            "a split view proven by two signed checkpoints, not delivered to the agencies",
            self.route(alert(evidence)),
        )
        self.add(
            "rule/log/equivocation-without-a-split",
            rule,
            "a false alarm: the two checkpoints agree",
            self.route(alert(evidence | {"checkpoints": [one, one]}), refused(Reason.BAD_TRANSITION)),
        )
        forged = sign_checkpoint(Checkpoint(ORIGIN, 12, bytes([1]) * 32), signing_key("sc-neijiang#sig-1"))
        self.add(
            "rule/log/equivocation-forged-evidence",
            rule,
            "a false alarm: one checkpoint is not signed by the audit key",
            self.route(alert(evidence | {"checkpoints": [one, forged]}), refused(Reason.BAD_TRANSITION)),
        )

    def coverage(self) -> None:
        """A positive case for every event type and version not covered above."""
        covered = {
            json.loads(s.wire)["type"]
            for c in self.cases
            for s in c.steps
            if s.expect.verdict == "accepted" and _parses(s.wire)
        }
        chair = str(self.registries["base"].chair)
        voters = list(self.registries["base"].voters)
        for spec in CATALOG.values():
            if spec.type in covered:
                continue
            to = [a for a in voters if a != chair]
            family = spec.family
            if "router" in spec.publishers and "agency" not in spec.publishers:
                env = self.sign(
                    self.forge.unsigned(
                        "svc-router",
                        family,
                        self.subject(spec.family.split(".")[0]),
                        ["sc-zigong"],
                        example(family),
                    )
                )
                self.add(
                    f"coverage/{family}",
                    "§6 catalog",
                    f"the router's {family} refused by a recipient",
                    self.receive(env, "sc-zigong", Verdict("accepted", payload=example(family))),
                )
                continue
            payload = example(family) | ({"chair": chair} if "chair" in example(family) else {})
            env = self.sign(
                self.forge.unsigned(chair, family, self.subject(spec.family.split(".")[0]), to, payload)
            )
            self.add(f"coverage/{family}", "§6 catalog", f"a valid {family} refused", self.route(env))


def _parses(wire: bytes) -> bool:
    try:
        return isinstance(json.loads(wire), dict)
    except ValueError:
        return False
