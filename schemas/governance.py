"""Registry changes: what the member agencies may decide together, and how a decided change
turns one registry version into the next.

Pure code. A change is a list of operations (``Change``); :func:`next_version` applies them
to the version in force and links the result to it (``previous`` = its digest), so the
versions form a chain an auditor re-checks from the genesis registry. The rules of who may
propose, approve and when a change takes effect are the governance kind's
(``schemas/families/governance.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

from jointbus.schemas.errors import ContractError, Reason, rejection
from jointbus.schemas.ids import format_time, parse_time
from jointbus.schemas.registry import KeyRecord, Member, Registry
from jointbus.schemas.wiremodel import WireModel

__all__ = [
    "ChairPassed",
    "Change",
    "KeyAdded",
    "KeyRevoked",
    "MemberAdmitted",
    "MemberReinstated",
    "MemberSuspended",
    "PolicyChanged",
    "RightsChanged",
    "carried",
    "next_version",
    "proposal",
]

MemberRef = Annotated[str, Field(pattern=r"^[a-z]{2}-[a-z]{2,20}$")]


def _op_required(schema: dict[str, Any]) -> None:
    """``op`` tells the changes apart: every change names it, default or not."""
    schema["required"] = sorted({*schema.get("required", []), "op"})


class _Op(WireModel):
    """Base of a registry change: closed, immutable, no null; ``op`` always written."""

    model_config = ConfigDict(json_schema_extra=_op_required)


class KeyAdded(_Op):
    """A new public key for a member (a rotation when ``retire_after`` ends the member's
    older keys of the same purpose at that moment)."""

    op: Literal["key.added"] = "key.added"
    key: KeyRecord
    retire_after: AwareDatetime | None = None


class KeyRevoked(_Op):
    """A key revoked from ``at``: events arriving after it are refused."""

    op: Literal["key.revoked"] = "key.revoked"
    kid: Annotated[str, Field(max_length=40)]
    at: AwareDatetime
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class MemberAdmitted(_Op):
    """A new member agency, with its first keys."""

    op: Literal["member.admitted"] = "member.admitted"
    member: Member
    keys: tuple[KeyRecord, ...] = Field(min_length=1, max_length=4)


class MemberSuspended(_Op):
    """A member agency suspended: it may not publish or vote until reinstated."""

    op: Literal["member.suspended"] = "member.suspended"
    member: MemberRef


class RightsChanged(_Op):
    """A member's publish rights replaced."""

    op: Literal["rights.changed"] = "rights.changed"
    member: MemberRef
    publish: tuple[Annotated[str, Field(max_length=80)], ...] = Field(max_length=50)


class MemberReinstated(_Op):
    """A suspended member agency may publish and vote again."""

    op: Literal["member.reinstated"] = "member.reinstated"
    member: MemberRef


class PolicyChanged(_Op):
    """How the agencies decide: the quorum (more than this percent of the voting agencies),
    the clue acknowledgement deadline, the witness quorum and the flood limits; an absent
    field stays as it is."""

    op: Literal["policy.changed"] = "policy.changed"
    quorum_percent: Annotated[int, Field(ge=50, le=90)] | None = None
    ack_within_hours: Annotated[int, Field(ge=1, le=720)] | None = None
    witness_quorum: Annotated[int, Field(ge=1, le=16)] | None = None
    #: the flood limits (docs/wire-format.md §5.1, §7): open obligations per pair, and the
    #: Kafka quotas of every agency's user
    open_per_pair: Annotated[int, Field(ge=1, le=100_000)] | None = None
    produce_bytes_per_second: Annotated[int, Field(ge=1024, le=1 << 30)] | None = None
    consume_bytes_per_second: Annotated[int, Field(ge=1024, le=1 << 30)] | None = None
    request_percentage: Annotated[int, Field(ge=1, le=1000)] | None = None


class ChairPassed(_Op):
    """The rotating chair of the joint meeting passes to another member agency."""

    op: Literal["chair.passed"] = "chair.passed"
    chair: MemberRef


Change = Annotated[
    KeyAdded
    | KeyRevoked
    | MemberAdmitted
    | MemberSuspended
    | MemberReinstated
    | RightsChanged
    | ChairPassed
    | PolicyChanged,
    Field(discriminator="op"),
]


def next_version(registry: Registry, changes: tuple[Change, ...] | list[Change], at: datetime) -> Registry:
    """The version after ``registry`` with ``changes`` applied, issued at ``at`` and linked to
    it; ``bad_transition`` when a change does not apply (an unknown key, a member twice)."""
    members = {m.id: m for m in registry.members}
    keys = {k.kid: k for k in registry.keys}
    chair = registry.chair
    policy = registry.policy
    for change in changes:
        if isinstance(change, KeyAdded):
            _need(change.key.kid not in keys, f"key {change.key.kid} is already registered")
            _need(change.key.owner in members, f"{change.key.owner} is not a member")
            _need(
                members[change.key.owner].kind == "agency",
                "the services' keys are not the agencies' to change",
            )
            if change.retire_after is not None:
                end = change.retire_after
                for kid, older in list(keys.items()):
                    same = older.owner == change.key.owner and older.purpose == change.key.purpose
                    if same and (older.not_after is None or older.not_after > end):
                        keys[kid] = older.model_copy(update={"not_after": end})
            keys[change.key.kid] = change.key
        elif isinstance(change, KeyRevoked):
            old = keys.get(change.kid)
            _need(old is not None and old.revoked_at is None, f"key {change.kid} is not a live key")
            assert old is not None
            keys[change.kid] = old.model_copy(
                update={"revoked_at": change.at, "revocation_reason": change.reason}
            )
        elif isinstance(change, MemberAdmitted):
            _need(change.member.id not in members, f"{change.member.id} is already a member")
            _need(change.member.kind == "agency", "only agencies are admitted by the members")
            _need(all(k.owner == change.member.id for k in change.keys), "the new member's keys are its own")
            _need(all(k.kid not in keys for k in change.keys), "a new member's key is already registered")
            members[change.member.id] = change.member
            keys.update({k.kid: k for k in change.keys})
        elif isinstance(change, MemberSuspended | MemberReinstated):
            _need(registry.is_agency(change.member), f"{change.member} is not a member agency")
            suspended = isinstance(change, MemberSuspended)
            members[change.member] = members[change.member].model_copy(update={"suspended": suspended})
        elif isinstance(change, PolicyChanged):
            changed = change.model_dump(exclude={"op"}, exclude_none=True)
            _need(bool(changed), "a policy change changes something")
            policy = policy.model_copy(update=changed)
        elif isinstance(change, RightsChanged):
            _need(registry.is_agency(change.member), f"{change.member} is not a member agency")
            members[change.member] = members[change.member].model_copy(update={"publish": change.publish})
        else:
            _need(change.chair != chair, f"{change.chair} already chairs the joint meeting")
            chair = change.chair
    voting = [m.id for m in members.values() if m.kind == "agency" and not m.suspended]
    _need(len(voting) >= 3, "a registry keeps at least three voting agencies")
    _need(chair is None or chair in voting, f"the chair {chair} must be a voting member agency")
    agencies = [m for m in members.values() if m.kind == "agency"]
    services = [m for m in members.values() if m.kind != "agency"]
    try:
        return Registry.model_validate(
            {
                **registry.model_dump(mode="json", exclude_none=True),
                "version": registry.version + 1,
                "issued_at": at.isoformat(),
                "previous": registry.digest,
                "chair": chair,
                "policy": policy.model_dump(mode="json", exclude_none=True),
                "members": [m.model_dump(mode="json", exclude_none=True) for m in (*agencies, *services)],
                "keys": [k.model_dump(mode="json", exclude_none=True) for k in keys.values()],
            }
        )
    except ValidationError as exc:
        raise rejection(
            Reason.BAD_TRANSITION, f"the changed registry is not valid: {exc.errors()[0]['msg']}"
        ) from None


def carried(registry: Registry, changes: tuple[Change, ...] | list[Change]) -> list[Change]:
    """``changes`` as they apply to ``registry``, the version in force when a proposal made
    on an earlier version takes effect (carried forward across its members' self-revocations,
    wire-format §5.1): a ``key.revoked`` of a key already revoked there is moot and left out
    (its owner revoked it meanwhile; it stays revoked as the owner did it). Nothing else a
    self-revocation changes can make a change fail, so no self-revocation voids a proposal.
    On the version a proposal was made on this is ``changes`` itself (revoking a key not
    live there is refused when proposed)."""
    revoked = {k.kid for k in registry.keys if k.revoked_at is not None}
    return [c for c in changes if not (isinstance(c, KeyRevoked) and c.kid in revoked)]


def _need(condition: bool, detail: str) -> None:
    if not condition:
        raise ContractError(detail, reason=Reason.BAD_TRANSITION)


def proposal(registry: Registry, changes: list[Change], at: datetime, reason: str) -> dict[str, object]:
    """The payload of a ``governance.proposed`` event made at ``at`` (the event's own time:
    the new version is issued then) on the version in force."""
    produced = next_version(registry, changes, parse_time(format_time(at)))  # as the wire has it
    return {
        "base_version": registry.version,
        "base_digest": registry.digest,
        "changes": [c.model_dump(mode="json", exclude_none=True) for c in changes],
        "new_digest": produced.digest,
        "reason": reason,
    }
