"""``jointbus govern ...``: the member agencies change their registry together.

An agency's operator proposes a change (a new key, a suspension, the chair passing), other
agencies' operators read it in their inbox and approve exactly what it produces; at a
majority it takes effect on the running bus. An agency revokes its own key at once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import click

from jointbus import context, ui
from jointbus.inbox import say_refused
from jointbus.schemas.errors import JointbusError
from jointbus.schemas.families.governance import GOVERNANCE_SUBJECT, RegistryProposed
from jointbus.schemas.governance import (
    ChairPassed,
    Change,
    KeyAdded,
    MemberSuspended,
    PolicyChanged,
    next_version,
    proposal,
)
from jointbus.schemas.ids import parse_time, utcnow
from jointbus.schemas.keys import Keyring, new_key
from jointbus.schemas.registry import Registry
from jointbus.schemas.registry_chain import check_genesis
from jointbus.streams import keystore
from jointbus.streams.registry_feed import follow, follow_chain
from jointbus.streams.sdk import Publisher, Subscriber
from jointbus.streams.security import AUDITOR
from jointbus.streams.settings import Settings

as_opt = click.option("--as", "agency", required=True, help="the agency acting (its keys sign)")


@click.group("govern")
def govern_group() -> None:
    """Change the registry by the member agencies' joint decision (no central authority)."""


async def _publish(cfg: Settings, agency: str, family: str, payload: Any, ring: Keyring | None = None) -> str:
    ring = ring or keystore.load_keyring(cfg.keystore_dir, agency)
    genesis = keystore.load_registry(cfg.keystore_dir)
    async with Publisher(agency, ring, genesis, cfg.bootstrap_servers, **context.kafka(cfg, agency)) as pub:
        others = [a for a in pub.registry.voters if a != agency]
        return await pub.publish(family, GOVERNANCE_SUBJECT, others, payload)


async def _in_force(cfg: Settings, principal: str) -> Registry:
    """The registry in force, followed from the keystore's (genesis) registry."""
    genesis = keystore.load_registry(cfg.keystore_dir)
    return await follow(genesis, cfg.bootstrap_servers, **context.kafka(cfg, principal))


async def _propose(cfg: Settings, agency: str, changes: list[Change], reason: str) -> tuple[str, str, int]:
    ring = keystore.load_keyring(cfg.keystore_dir, agency)
    registry = await _in_force(cfg, agency)
    at = utcnow()
    payload = proposal(registry, changes, at, reason)
    async with Publisher(
        agency, ring, registry, cfg.bootstrap_servers, follow_registry=False, **context.kafka(cfg, agency)
    ) as pub:
        others = [a for a in registry.voters if a != agency]
        event_id = await pub.publish("governance.proposed", GOVERNANCE_SUBJECT, others, payload, now=at)
    return event_id, str(payload["new_digest"]), registry.quorum


def _said(event_id: str, digest: str, quorum: int) -> None:
    ui.say(
        f"proposed {event_id} (new registry digest {digest[:16]}…): in force once {quorum} agencies signed"
    )
    ui.say(f"other agencies approve it with: jointbus govern approve --as <agency> {event_id}")


@govern_group.group("propose")
def propose_group() -> None:
    """Propose a registry change (the proposer's signature is the first approval)."""


@propose_group.command("rotate-key")
@as_opt
@click.option("--purpose", type=click.Choice(["sign", "seal"]), default="sign", show_default=True)
@click.option("--overlap-hours", default=24.0, show_default=True, help="how long the old key stays valid")
@click.option("--reason", default="密钥定期轮换 (scheduled key rotation)", show_default=True)
def propose_rotate_key(agency: str, purpose: str, overlap_hours: float, reason: str) -> None:
    """A new key for AGENCY: made here, its private half kept in the agency's keyring."""
    cfg = context.settings()

    async def go() -> tuple[str, str, int]:
        registry = await _in_force(cfg, agency)
        ring = keystore.load_keyring(cfg.keystore_dir, agency)
        mine = [k for k in registry.keys if k.owner == agency and k.purpose == purpose]
        serial = max((int(k.kid.rsplit("-", 1)[1]) for k in mine), default=0) + 1
        now = utcnow()
        record, seed = new_key(agency, "seal" if purpose == "seal" else "sign", serial, now)
        keystore.save_keyring(cfg.keystore_dir, Keyring(owner=agency, keys={**ring.keys, record.kid: seed}))
        change = KeyAdded(key=record, retire_after=now + timedelta(hours=overlap_hours))
        ui.say(f"new key {record.kid} saved to the keyring of {agency}; proposing it")
        return await _propose(cfg, agency, [change], reason)

    _said(*asyncio.run(go()))


@propose_group.command("suspend")
@as_opt
@click.argument("member")
@click.option("--reason", required=True, help="why (kept in the log)")
def propose_suspend(agency: str, member: str, reason: str) -> None:
    """Suspend MEMBER: it may no longer publish or vote."""
    cfg = context.settings()
    _said(*asyncio.run(_propose(cfg, agency, [MemberSuspended(member=member)], reason)))


@propose_group.command("chair")
@as_opt
@click.argument("new_chair")
@click.option("--reason", default="轮值主席交接 (the chair rotates)", show_default=True)
def propose_chair(agency: str, new_chair: str, reason: str) -> None:
    """Pass the chair of the joint meeting to NEW_CHAIR."""
    cfg = context.settings()
    _said(*asyncio.run(_propose(cfg, agency, [ChairPassed(chair=new_chair)], reason)))


@propose_group.command("policy")
@as_opt
@click.option(
    "--quorum-percent", type=click.IntRange(50, 90), default=None, help="more than this % must sign"
)
@click.option("--ack-hours", type=click.IntRange(1, 720), default=None, help="clue acknowledgement deadline")
@click.option(
    "--witness-quorum",
    type=click.IntRange(1, 16),
    default=None,
    help="agencies' witnesses that must cosign a checkpoint before auditors trust it",
)
@click.option(
    "--open-per-pair",
    type=click.IntRange(1, 100_000),
    default=None,
    help="open obligations one agency may hold on another (beyond: too_many_open)",
)
@click.option(
    "--produce-bytes", type=click.IntRange(1024, 1 << 30), default=None, help="Kafka quota: B/s per agency"
)
@click.option(
    "--consume-bytes", type=click.IntRange(1024, 1 << 30), default=None, help="Kafka quota: B/s fetched"
)
@click.option(
    "--request-percent", type=click.IntRange(1, 1000), default=None, help="Kafka quota: % of a thread"
)
@click.option("--reason", required=True, help="why (kept in the log)")
def propose_policy(
    agency: str,
    quorum_percent: int | None,
    ack_hours: int | None,
    witness_quorum: int | None,
    open_per_pair: int | None,
    produce_bytes: int | None,
    consume_bytes: int | None,
    request_percent: int | None,
    reason: str,
) -> None:
    """Change how the agencies decide: the quorum, the acknowledgement deadline, how many
    witnesses make a checkpoint trusted, the flood limits (open items per pair, Kafka
    quotas: apply those with `jointbus quotas apply` once the change is in force)."""
    change = PolicyChanged(
        quorum_percent=quorum_percent,
        ack_within_hours=ack_hours,
        witness_quorum=witness_quorum,
        open_per_pair=open_per_pair,
        produce_bytes_per_second=produce_bytes,
        consume_bytes_per_second=consume_bytes,
        request_percentage=request_percent,
    )
    if not change.model_dump(exclude={"op"}, exclude_none=True):
        raise JointbusError(
            "give --quorum-percent, --ack-hours, --witness-quorum, --open-per-pair, "
            "--produce-bytes, --consume-bytes or --request-percent",
            reason="usage",
        )
    cfg = context.settings()
    _said(*asyncio.run(_propose(cfg, agency, [change], reason)))


@govern_group.command("approve")
@as_opt
@click.argument("proposal_id")
def approve(agency: str, proposal_id: str) -> None:
    """Approve PROPOSAL_ID, found in AGENCY's inbox: its changes are shown and the version
    they produce on the version it was made on is computed here, so AGENCY signs exactly
    what it read (also when self-revocations since carried it forward)."""
    cfg = context.settings()

    async def go() -> str:
        genesis = keystore.load_registry(cfg.keystore_dir)
        followed = await follow_chain(genesis, cfg.bootstrap_servers, **context.kafka(cfg, agency))
        chain = [genesis, *(version for version, _ in followed)]
        registry = chain[-1]
        ring = keystore.load_keyring(cfg.keystore_dir, agency)
        found: RegistryProposed | None = None
        at = None
        sub = Subscriber(
            agency,
            ring,
            registry,
            cfg.bootstrap_servers,
            group_id=False,
            receipts=False,
            until_end=True,
            **context.kafka(cfg, agency),
        )
        sub.on_refusal = say_refused  # a record it cannot accept is named, and passed over
        async with sub:
            async for delivery in sub:
                if delivery.id == proposal_id and isinstance(delivery.payload, RegistryProposed):
                    found, at = delivery.payload, delivery.envelope.time
        if found is None or at is None:
            raise JointbusError(f"no proposal {proposal_id} in the inbox of {agency}", reason="not_found")
        base = next(
            (v for v in chain if (v.version, v.digest) == (found.base_version, found.base_digest)), None
        )
        if base is None:
            raise JointbusError(
                f"the proposal is on a registry v{found.base_version} this chain does not hold; not approved",
                reason="bad_transition",
            )
        produced = next_version(base, found.changes, parse_time(at))
        if produced.digest != found.new_digest:
            raise JointbusError(
                "the proposal does not produce the version it names; not approved", reason="bad_transition"
            )
        for change in found.changes:
            ui.say(f"  {change.op}: {change.model_dump_json(exclude={'op'})}")  # in full: it is signed
        if base.version != registry.version:
            ui.say(
                f"  made on v{base.version}; carried forward to v{registry.version} (self-revocations since)"
            )
        payload = {"proposal_id": proposal_id, "new_digest": found.new_digest}
        return await _publish(cfg, agency, "governance.approved", payload, ring)

    ui.say(f"approved: {asyncio.run(go())}")


@govern_group.command("revoke-own")
@as_opt
@click.argument("kid")
@click.option("--reason", required=True, help="what happened (lost, stolen, leaked)")
def revoke_own(agency: str, kid: str, reason: str) -> None:
    """Revoke AGENCY's own key KID at once (one signature, no quorum)."""
    cfg = context.settings()
    event_id = asyncio.run(_publish(cfg, agency, "governance.key_revoked", {"kid": kid, "reason": reason}))
    ui.say(f"revoked {kid}: {event_id}; the next event signed with it is refused")


@govern_group.command("status")
@click.option("--as", "principal", default=AUDITOR, show_default=True, help="who reads the registry topic")
def status(principal: str) -> None:
    """The registry in force and its chain of versions, each proven from the genesis."""
    cfg = context.settings()
    genesis = keystore.load_registry(cfg.keystore_dir)
    signed = keystore.load_genesis(cfg.keystore_dir)
    if signed is None:
        ui.say("[yellow]genesis registry: no founding signatures in the keystore[/]")
    else:
        check_genesis(genesis, signed)
        ui.say(f"genesis registry v{genesis.version} signed by all {len(genesis.agencies)} founding agencies")
    chain = asyncio.run(follow_chain(genesis, cfg.bootstrap_servers, **context.kafka(cfg, principal)))
    rows = [
        [genesis.version, genesis.issued_at.isoformat()[:19], genesis.digest[:16], "genesis (keystore)", ""]
    ]
    rows += [
        [v.version, since.isoformat()[:19], v.digest[:16], "the agencies' decision", v.chair or ""]
        for v, since in chain
    ]
    registry = chain[-1][0] if chain else genesis
    ui.table(
        f"registry in force: v{registry.version}, {len(registry.voters)} voters, quorum {registry.quorum}",
        ["version", "in force from", "digest", "brought into force by", "chair"],
        rows,
    )
