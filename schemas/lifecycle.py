"""The lifecycle rules of each aggregate, as pure functions (state + event → decision).

The router applies them live; auditors apply the very same functions on replay. State is a
plain JSON-able dict, so it can be rebuilt from history.

An aggregate is everything that shares a ``subject`` (``clue/<id>``, ``jointcheck/<id>``,
``rectification/<id>``, ...). Each state remembers the events it accepted (sender, type,
recipients), which receipts refer to. Whether a Kafka record was decided before, and
whether an event id was used before anywhere on the bus, is the ledger's business
(``schemas.ledger``), not an aggregate's.

The chair of the joint meeting is one chain on the subject ``chair/rotation``: it starts
at the registry's ``chair`` and only the current chair passes it on or records a meeting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar, Literal

from jointbus.schemas.catalog import (
    ChairRotated,
    JointCheckInvited,
    JointCheckResponded,
    JointMeetingHeld,
    Payload,
    Receipt,
    RectificationIssued,
    RectificationReopened,
    family_of,
)
from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.ids import format_time, parse_time
from jointbus.schemas.registry import Registry

State = dict[str, Any]
#: the one aggregate that carries the chair of the joint meeting
CHAIR_SUBJECT = "chair/rotation"
#: deadlines are dates in China Standard Time: a date passes at its end, 24:00 +08:00
CHINA = timedelta(hours=8)


def china_date(moment: datetime) -> date:
    """The calendar date in China Standard Time at ``moment`` (deadlines are such dates)."""
    return (moment.astimezone(UTC) + CHINA).date()


def deadline_moment(day: date) -> datetime:
    """The instant a deadline date has passed (end of that day, UTC+8)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) - CHINA


@dataclass
class Decision:
    """The router's verdict on one event."""

    accepted: bool
    reason: str | None = None
    detail: str = ""
    deliver_to: list[str] = field(default_factory=list)


def _reject(reason: Reason, detail: str) -> Decision:
    return Decision(False, reason.value, detail)


class Rules:
    """Lifecycle rules; ``ack_within`` is the bus's acknowledgement deadline for clues."""

    def __init__(self, ack_within: timedelta = timedelta(days=3)) -> None:
        self.ack_within = ack_within
        self._by_family: dict[str, Callable[[State, Envelope, Payload | None], Decision]] = {
            "clue.transferred": self._clue_transferred,
            "clue.acknowledged": self._clue_followup,
            "clue.accepted": self._clue_followup,
            "clue.returned": self._clue_followup,
            "clue.disposition_reported": self._clue_followup,
            "jointcheck.invited": self._check_invited,
            "jointcheck.responded": self._check_responded,
            "jointcheck.findings_reported": self._check_findings,
            "rectification.issued": self._rect_issued,
            "rectification.progress_reported": self._rect_followup,
            "rectification.completion_reported": self._rect_followup,
            "rectification.verified": self._rect_followup,
            "rectification.reopened": self._rect_followup,
            "receipt": self._receipt,
            "meeting.held": self._meeting_held,
            "mechanism.established": self._mechanism_established,
            "chair.rotated": self._chair_rotated,
        }

    # ------------------------------------------------------------------------ entry point
    def decide(
        self,
        state: State | None,
        env: Envelope,
        family: str,
        payload: Payload | None,
        *,
        registry: Registry,
        lookup: Callable[[str], State | None],
    ) -> tuple[State | None, Decision]:
        """Apply one verified event to its aggregate's state.

        Returns the new state (None when nothing changed) and the decision. ``lookup``
        reads another aggregate (the chair chain), ``registry`` is the one the event was
        verified against.
        """
        current: State = state or {"subject": env.subject, "status": "new", "events": {}}
        rule = self._by_family.get(family)
        if rule is None:
            return None, _reject(Reason.NOT_AUTHORIZED, f"{family} is not published by agencies")
        work = _copied(current)
        self._registry, self._lookup = registry, lookup
        decision = rule(work, env, payload)
        if not decision.accepted:
            return None, decision
        if not decision.deliver_to:
            decision.deliver_to = list(env.recipients)
        if family != "receipt":
            work["events"][env.id] = {
                "sender": env.sender,
                "type": env.type,
                "recipients": list(env.recipients),
            }
        return work, decision

    def current_chair(self) -> str | None:
        """The chair now: the chair chain's last holder, else the registry's."""
        chain = self._lookup(CHAIR_SUBJECT)
        if chain is not None and chain.get("chair"):
            return str(chain["chair"])
        return self._registry.chair

    _registry: Registry
    _lookup: Callable[[str], State | None]

    # ---------------------------------------------------------------------------- clues
    def _clue_transferred(self, s: State, env: Envelope, _: Payload | None) -> Decision:
        if s["status"] != "new":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} was already transferred")
        if len(env.recipients) != 1:
            return _reject(Reason.BAD_TRANSITION, "a clue is transferred to exactly one agency")
        due = parse_time(env.time) + self.ack_within
        s.update(
            kind="clue",
            status="transferred",
            sender=env.sender,
            receiver=env.recipients[0],
            ack_due=format_time(due),
        )
        return Decision(True)

    _CLUE_STEPS: ClassVar[dict[str, tuple[tuple[str, ...], str]]] = {
        "clue.acknowledged": (("transferred",), "acknowledged"),
        "clue.accepted": (("transferred", "acknowledged"), "accepted"),
        "clue.returned": (("transferred", "acknowledged"), "returned"),
        "clue.disposition_reported": (("accepted",), "disposed"),
    }

    def _clue_followup(self, s: State, env: Envelope, _: Payload | None) -> Decision:
        family = family_of(env.type)
        allowed, after = self._CLUE_STEPS[family]
        if s.get("kind") != "clue":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} is not a transferred clue")
        if env.sender != s["receiver"]:
            return _reject(Reason.NOT_AUTHORIZED, f"only {s['receiver']} acts on {env.subject}")
        if env.recipients != [s["sender"]]:
            return _reject(Reason.NOT_AUTHORIZED, f"clue follow-ups go to {s['sender']} only")
        if s["status"] not in allowed:
            return _reject(Reason.BAD_TRANSITION, f"{family} is not allowed when the clue is {s['status']}")
        if s["status"] == "transferred":  # accepting or returning also acknowledges
            s["acknowledged_at"] = env.time
        s["status"] = after
        return Decision(True)

    # ----------------------------------------------------------------------- joint check
    def _check_invited(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        assert isinstance(payload, JointCheckInvited)
        if s["status"] != "new":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} was already convened")
        if not set(payload.staff_requested) <= set(env.recipients):
            return _reject(Reason.NOT_AUTHORIZED, "staff requested from an agency not invited")
        s.update(
            kind="jointcheck",
            status="open",
            convener=env.sender,
            invitees=list(env.recipients),
            responses={},
            findings=0,
        )
        return Decision(True)

    def _check_responded(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        assert isinstance(payload, JointCheckResponded)
        if s.get("kind") != "jointcheck":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} is not a convened joint check")
        if env.sender not in s["invitees"]:
            return _reject(Reason.NOT_AUTHORIZED, f"{env.sender} was not invited to {env.subject}")
        if env.sender in s["responses"]:
            return _reject(Reason.BAD_TRANSITION, f"{env.sender} already responded")
        if s["convener"] not in env.recipients:
            return _reject(Reason.NOT_AUTHORIZED, "a response must reach the convener")
        if payload.accepted and not payload.staff:
            return _reject(Reason.BAD_TRANSITION, "an acceptance names the staff lent")
        if not payload.accepted and not payload.decline_reason:
            return _reject(Reason.BAD_TRANSITION, "a decline gives a reason")
        s["responses"][env.sender] = payload.accepted
        return Decision(True)

    def _check_findings(self, s: State, env: Envelope, _: Payload | None) -> Decision:
        if s.get("kind") != "jointcheck":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} is not a convened joint check")
        participants = {s["convener"], *(a for a, ok in s["responses"].items() if ok)}
        if env.sender not in participants:
            return _reject(Reason.NOT_AUTHORIZED, f"{env.sender} does not take part in {env.subject}")
        s["findings"] += 1
        s["status"] = "findings_reported"
        return Decision(True)

    # --------------------------------------------------------------------- rectification
    def _rect_issued(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        assert isinstance(payload, RectificationIssued)
        if s["status"] != "new":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} was already issued")
        if not _after(payload.deadline, env.time):
            return _reject(Reason.BAD_TRANSITION, f"deadline {payload.deadline} has passed at {env.time}")
        s.update(
            kind="rectification",
            status="open",
            issuer=env.sender,
            responsible=list(env.recipients),
            deadline=payload.deadline.isoformat(),
        )
        return Decision(True)

    _RECT_STEPS: ClassVar[dict[str, tuple[tuple[str, ...], str | None, str]]] = {
        "rectification.progress_reported": (("open", "reopened"), None, "responsible"),
        "rectification.completion_reported": (("open", "reopened"), "completed", "responsible"),
        "rectification.verified": (("completed",), "verified", "issuer"),
        "rectification.reopened": (("completed", "verified"), "reopened", "issuer"),
    }

    def _rect_followup(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        family = family_of(env.type)
        allowed, after, actor = self._RECT_STEPS[family]
        if s.get("kind") != "rectification":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} is not an issued rectification")
        may_act = [s["issuer"]] if actor == "issuer" else s["responsible"]
        if env.sender not in may_act:
            return _reject(Reason.NOT_AUTHORIZED, f"only {', '.join(may_act)} may send {family} here")
        parties = {s["issuer"], *s["responsible"]} - {env.sender}
        if not parties <= set(env.recipients):
            return _reject(Reason.NOT_AUTHORIZED, f"{family} must reach {', '.join(sorted(parties))}")
        if s["status"] not in allowed:
            return _reject(Reason.BAD_TRANSITION, f"{family} is not allowed when the item is {s['status']}")
        if isinstance(payload, RectificationReopened):
            if not _after(payload.new_deadline, env.time):
                return _reject(
                    Reason.BAD_TRANSITION, f"new deadline {payload.new_deadline} has passed at {env.time}"
                )
            s["deadline"] = payload.new_deadline.isoformat()
            s["reopened"] = s.get("reopened", 0) + 1
        if after is not None:
            s["status"] = after
        return Decision(True)

    # ------------------------------------------------------------------ receipts, one-shots
    def _receipt(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        assert isinstance(payload, Receipt)
        original = s["events"].get(payload.event_id)
        if original is None:
            return _reject(Reason.BAD_TRANSITION, f"no accepted event {payload.event_id} in {env.subject}")
        if env.sender not in original["recipients"]:
            return _reject(Reason.NOT_AUTHORIZED, f"{env.sender} did not receive {payload.event_id}")
        if env.recipients != [original["sender"]]:
            return _reject(Reason.NOT_AUTHORIZED, f"a receipt goes to {original['sender']} only")
        if payload.status == "refused":
            refused = s.setdefault("refused", {})
            if env.sender in refused.get(payload.event_id, {}):
                return _reject(Reason.BAD_TRANSITION, f"{env.sender} already refused {payload.event_id}")
            refused.setdefault(payload.event_id, {})[env.sender] = payload.reason
            if family_of(original["type"]) == "clue.transferred" and s.get("status") == "transferred":
                s["status"] = "undeliverable"
        return Decision(True)

    def _one_shot(self, s: State, env: Envelope, _: Payload | None) -> Decision:
        if s["status"] != "new":
            return _reject(Reason.BAD_TRANSITION, f"{env.subject} is already recorded")
        s.update(kind=env.subject.split("/")[0], status="recorded", sender=env.sender)
        return Decision(True)

    def _meeting_held(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        assert isinstance(payload, JointMeetingHeld)
        chair = self.current_chair()
        if env.sender != chair or payload.chair != chair:
            return _reject(Reason.NOT_AUTHORIZED, f"only the current chair {chair} records a joint meeting")
        return self._one_shot(s, env, payload)

    def _mechanism_established(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        """Mechanisms are adopted by the joint meeting: its chair records them, so no agency
        can credit others with mechanisms they never agreed to."""
        chair = self.current_chair()
        if env.sender != chair:
            return _reject(Reason.NOT_AUTHORIZED, f"only the current chair {chair} records a mechanism")
        return self._one_shot(s, env, payload)

    def _chair_rotated(self, s: State, env: Envelope, payload: Payload | None) -> Decision:
        assert isinstance(payload, ChairRotated)
        if env.subject != CHAIR_SUBJECT:
            return _reject(Reason.BAD_TRANSITION, f"the chair is passed on {CHAIR_SUBJECT} only")
        chair = s.get("chair") or self._registry.chair
        if env.sender != chair:
            return _reject(Reason.NOT_AUTHORIZED, f"only the current chair {chair} passes the chair")
        if payload.new_chair == chair or not self._registry.is_agency(payload.new_chair):
            return _reject(Reason.BAD_TRANSITION, f"{payload.new_chair} cannot take the chair from {chair}")
        if payload.term_end <= payload.term_start:
            return _reject(Reason.BAD_TRANSITION, "a chair's term ends after it starts")
        s.update(kind="chair", status="rotated", chair=payload.new_chair)
        return Decision(True)


@dataclass(frozen=True)
class Overdue:
    """A deadline that has passed in an aggregate."""

    what: Literal["clue_not_acknowledged", "rectification_past_deadline"]
    deadline: date
    due: datetime
    responsible: str
    parties: list[str]


def due_at(state: State) -> datetime | None:
    """The moment this aggregate's next deadline passes, if one is still to be met."""
    kind, status = state.get("kind"), state.get("status")
    if kind == "clue" and status == "transferred":
        return parse_time(state["ack_due"])
    if kind == "rectification" and status in ("open", "reopened"):
        return deadline_moment(date.fromisoformat(state["deadline"]))
    return None


def overdue_items(state: State, now: datetime) -> list[Overdue]:
    """The deadlines of this aggregate that have passed by ``now`` and are still unmet."""
    kind, status = state.get("kind"), state.get("status")
    if kind == "clue" and status == "transferred":
        due = parse_time(state["ack_due"])
        if now >= due:
            parties = sorted({state["receiver"], state["sender"]})
            return [Overdue("clue_not_acknowledged", due.date(), due, state["receiver"], parties)]
    if kind == "rectification" and status in ("open", "reopened"):
        deadline = date.fromisoformat(state["deadline"])
        due = deadline_moment(deadline)
        if now >= due:
            parties = sorted({*state["responsible"], state["issuer"]})
            return [Overdue("rectification_past_deadline", deadline, due, state["responsible"][0], parties)]
    return []


def _after(deadline: date, event_time: str) -> bool:
    """True when a deadline date has not yet passed at the event's time."""
    return deadline_moment(deadline) > parse_time(event_time)


def _copied(value: Any) -> Any:
    """A deep copy of JSON-like state (dicts, lists, scalars): a rejected event must leave
    the state it was judged against untouched, whatever a rule changed."""
    if type(value) is dict:
        return {k: _copied(v) for k, v in value.items()}
    if type(value) is list:
        return [_copied(v) for v in value]
    return value
