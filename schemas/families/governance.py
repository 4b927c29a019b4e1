"""共同治理 — the member agencies change their registry together: who is a member, which keys
are theirs, what they may publish. No central authority edits it.

One chain on the subject ``governance/registry``. A member agency proposes a change to the
registry version in force, committing to the digest of the version it would produce; other
member agencies approve that digest; when a majority of the voting agencies (the proposer
included) has, the change takes effect as the next registry version, linked to the one
before (``schemas.governance.next_version``). The router, the auditors and the agencies'
Subscribers all switch to it in log order, without a restart.

One change cannot wait for a meeting: an agency revokes its own compromised key at once,
with one signature (``governance.key_revoked``). That version needs no quorum, so it voids
nothing: the open proposals are carried forward to it (a member cannot dodge its own
suspension by revoking one of its keys). Only a version a majority brought into force closes
the proposals still open (wire-format §5.1).
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, TypeAdapter

from jointbus.schemas.envelope import Envelope
from jointbus.schemas.errors import Reason
from jointbus.schemas.family import AggregateState, Context, Fact, Kind, Payload, Tally, event, evolve, refuse
from jointbus.schemas.fields import Text
from jointbus.schemas.governance import Change, KeyAdded, KeyRevoked, carried, next_version
from jointbus.schemas.ids import parse_time
from jointbus.schemas.registry import Registry

#: the one aggregate that carries the registry's governance
GOVERNANCE_SUBJECT = "governance/registry"
#: proposals kept open at once (a new one beyond this is refused until some are decided)
MAX_OPEN = 16
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_CHANGES: TypeAdapter[list[Change]] = TypeAdapter(list[Change])


class RegistryProposed(Payload):
    """A member proposes changes to the registry version in force (``base_version``, whose
    digest is ``base_digest``); ``new_digest`` is the digest of the version they produce."""

    base_version: Annotated[int, Field(ge=1)]
    base_digest: Digest
    changes: list[Change] = Field(min_length=1, max_length=20)
    new_digest: Digest
    reason: Text


class RegistryApproved(Payload):
    """A member approves a proposal: the exact version it produces (by digest)."""

    proposal_id: Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")]
    #: the proposal's own ``new_digest`` (the version on the version it was made on), also
    #: once self-revocations carried it forward (§5.1): one proposal, one digest to sign
    new_digest: Digest


class KeyRevokedByOwner(Payload):
    """An agency revokes its own key at once (lost, stolen, leaked): no quorum needed."""

    kid: Annotated[str, Field(max_length=40)]
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class Proposal(Payload):
    """An open proposal: who proposed it, on which version, what it changes, who approved."""

    id: str
    proposer: str
    time: str
    base_version: int
    new_digest: str
    changes: str  # the changes as canonical JSON (kept to apply them once approved)
    approvals: tuple[str, ...]


class GovernanceState(AggregateState):
    """The governance chain: the registry version it last produced and the open proposals."""

    kind: str = "governance"
    version: int
    open: tuple[Proposal, ...] = ()
    #: the event that made the last change take effect, and that change (applied by the ledger)
    adopted_by: str | None = None
    adopted: str | None = None
    adopted_time: str | None = None


def _voter(env: Envelope, ctx: Context) -> None:
    if env.sender not in ctx.registry.voters:
        refuse(Reason.NOT_AUTHORIZED, f"{env.sender} has no vote in registry v{ctx.registry.version}")
    _reaches_all(env, ctx)


def _reaches_all(env: Envelope, ctx: Context) -> None:
    if env.subject != GOVERNANCE_SUBJECT:
        refuse(Reason.BAD_TRANSITION, f"the registry is governed on {GOVERNANCE_SUBJECT} only")
    missing = set(ctx.registry.voters) - {env.sender} - set(env.recipients)
    if missing:
        refuse(Reason.NOT_AUTHORIZED, f"a governance event reaches every member; missing {min(missing)}")


def _one_backing(now: GovernanceState, env: Envelope, ctx: Context) -> None:
    """A voter backs one open proposal at a time (proposing counts), until a majority decides
    one: two majorities between two decisions would need someone to sign twice, which is then
    on record. Proposals carried across a self-revocation keep their backers."""
    backed = next((p.id for p in now.open if env.sender in p.approvals), None)
    if backed is not None:
        refuse(Reason.BAD_TRANSITION, f"{env.sender} already backs {backed}, still open")


def _consenting(proposal: Proposal, ctx: Context) -> set[str]:
    """The agencies whose own keys a proposal adds or revokes: none loses or gains a key
    without its own signature among the approvals (no majority signs in a member's name, nor
    takes its key; against a hostile member the majority suspends it, which needs no consent).
    A revocation made moot by the owner's own meanwhile needs none either."""
    owners = set()
    for change in carried(ctx.registry, _CHANGES.validate_python(json.loads(proposal.changes))):
        if isinstance(change, KeyAdded):
            owners.add(change.key.owner)
        elif isinstance(change, KeyRevoked):
            revoked = next((k for k in ctx.registry.keys if k.kid == change.kid), None)
            if revoked is not None:
                owners.add(revoked.owner)
    return owners & set(ctx.registry.agencies)


def _passes(proposal: Proposal, ctx: Context) -> bool:
    return len(proposal.approvals) >= ctx.registry.quorum and _consenting(proposal, ctx) <= set(
        proposal.approvals
    )


def _current(state: GovernanceState | None, ctx: Context) -> GovernanceState:
    """The chain's state under the version in force. Its open proposals are still open when
    this chain produced that version (a self-revocation carries them forward; a majority's
    version closed them in ``_adopt``); under a version it did not produce, only proposals
    on that version are."""
    version = ctx.registry.version
    if state is None:
        return GovernanceState(status="idle", version=version)
    still = (
        state.open if state.version == version else tuple(p for p in state.open if p.base_version == version)
    )
    return evolve(state, version=version, open=still, adopted_by=None)


def _adopt(
    state: GovernanceState, env: Envelope, proposal: Proposal, ctx: Context, *, by_majority: bool = True
) -> GovernanceState:
    """``proposal`` takes effect. A majority's version closes every other open proposal: it
    may change the voters, the quorum and the keys their approvals were counted under, and it
    frees each backer to back anew; it took a majority, and what it closed may be proposed
    again on it. An owner's self-revocation (no quorum) closes none: they carry forward."""
    rest = () if by_majority else tuple(p for p in state.open if p.id != proposal.id)
    return evolve(
        state,
        status="adopted",
        version=ctx.registry.version + 1,
        open=rest,
        adopted_by=env.id,
        adopted=proposal.changes,
        adopted_time=proposal.time,
    )


def proposed(
    state: GovernanceState | None, env: Envelope, payload: RegistryProposed, ctx: Context
) -> GovernanceState:
    _voter(env, ctx)
    now = _current(state, ctx)
    if (payload.base_version, payload.base_digest) != (ctx.registry.version, ctx.registry.digest):
        refuse(
            Reason.BAD_TRANSITION,
            f"the proposal is not on registry v{ctx.registry.version} (the one in force)",
        )
    _one_backing(now, env, ctx)
    if len(now.open) >= MAX_OPEN:
        refuse(Reason.BAD_TRANSITION, f"{MAX_OPEN} proposals are open; decide some first")
    produced = next_version(ctx.registry, payload.changes, parse_time(env.time))
    if produced.digest != payload.new_digest:
        refuse(Reason.BAD_TRANSITION, "new_digest is not the digest of the version these changes produce")
    changes = json.dumps(
        _CHANGES.dump_python(payload.changes, mode="json"), sort_keys=True, ensure_ascii=False
    )
    proposal = Proposal(
        id=env.id,
        proposer=env.sender,
        time=env.time,
        base_version=payload.base_version,
        new_digest=payload.new_digest,
        changes=changes,
        approvals=(env.sender,),
    )
    after = evolve(now, status="open", open=(*now.open, proposal))
    return _adopt(after, env, proposal, ctx) if _passes(proposal, ctx) else after


def approved(
    state: GovernanceState | None, env: Envelope, payload: RegistryApproved, ctx: Context
) -> GovernanceState:
    _voter(env, ctx)
    now = _current(state, ctx)
    proposal = next((p for p in now.open if p.id == payload.proposal_id), None)
    if proposal is None:
        refuse(
            Reason.BAD_TRANSITION,
            f"no open proposal {payload.proposal_id} on registry v{ctx.registry.version}",
        )
    if payload.new_digest != proposal.new_digest:
        refuse(Reason.BAD_TRANSITION, "the approval names another version than the proposal produces")
    _one_backing(now, env, ctx)
    counted = evolve(proposal, approvals=(*proposal.approvals, env.sender))
    after = evolve(now, open=tuple(counted if p.id == proposal.id else p for p in now.open))
    return _adopt(after, env, counted, ctx) if _passes(counted, ctx) else after


def key_revoked(
    state: GovernanceState | None, env: Envelope, payload: KeyRevokedByOwner, ctx: Context
) -> GovernanceState:
    _reaches_all(env, ctx)
    key = next((k for k in ctx.registry.keys if k.kid == payload.kid), None)
    if key is None or key.owner != env.sender:
        refuse(Reason.NOT_AUTHORIZED, f"{env.sender} revokes only its own keys")
    signing = ctx.registry.key(env.sigkeyid)
    if key.not_before > signing.not_before:  # a stolen old key must not revoke the new one
        refuse(Reason.NOT_AUTHORIZED, f"{env.sigkeyid} may not revoke the newer key {payload.kid}")
    # in force from the earlier of the signed time and the arrival: not later than it arrived
    at = min(parse_time(env.time), ctx.received) if ctx.received is not None else parse_time(env.time)
    if key.revoked_at is not None or not key.valid_at(at):
        refuse(Reason.BAD_TRANSITION, f"{payload.kid} is not a live key")
    now = _current(state, ctx)
    change = KeyRevoked(kid=payload.kid, at=at, reason=payload.reason)
    changes = json.dumps(_CHANGES.dump_python([change], mode="json"), sort_keys=True, ensure_ascii=False)
    self_revocation = Proposal(
        id=env.id,
        proposer=env.sender,
        time=env.time,
        base_version=ctx.registry.version,
        new_digest="0" * 64,
        changes=changes,
        approvals=(env.sender,),
    )
    return _adopt(now, env, self_revocation, ctx, by_majority=False)


def registry_change(state: AggregateState, env: Envelope, ctx: Context) -> Registry | None:
    """The registry version an accepted governance event brings into force, if it does: the
    adopted changes applied to the version in force (``carried``: the proposal may have been
    made on an earlier version, before its members' self-revocations), issued at the time of
    the event that made them (the proposal's, or the self-revocation's)."""
    if not isinstance(state, GovernanceState) or state.adopted_by != env.id or state.adopted is None:
        return None
    changes = carried(ctx.registry, _CHANGES.validate_python(json.loads(state.adopted)))
    at = parse_time(state.adopted_time or env.time)
    return next_version(ctx.registry, changes, at)


def project(tally: Tally, fact: Fact) -> None:
    """Registry changes proposed and approved, per agency."""
    if fact.family == "governance.proposed":
        tally.count(fact.sender, "registry_proposals")
        tally.total("registry_proposals")


KIND = Kind(
    name="governance",
    order=100,
    events=(
        event(
            "governance.proposed",
            1,
            RegistryProposed,
            {
                "base_version": 1,
                "base_digest": "0" * 64,
                "changes": [{"op": "member.suspended", "member": "cq-dazu"}],
                "new_digest": "1" * 64,
                "reason": "联席会议决定暂停该单位的发布权限",
            },
        ),
        event(
            "governance.approved",
            1,
            RegistryApproved,
            {"proposal_id": "01950c2a-0000-7000-8000-000000000001", "new_digest": "1" * 64},
        ),
        event(
            "governance.key_revoked", 1, KeyRevokedByOwner, {"kid": "cq-dazu#sig-1", "reason": "签名设备遗失"}
        ),
    ),
    state=GovernanceState,
    transitions={
        "governance.proposed": proposed,
        "governance.approved": approved,
        "governance.key_revoked": key_revoked,
    },
    columns=("registry_proposals",),
    project=project,
    registry_change=registry_change,
)
