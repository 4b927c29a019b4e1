"""Governance without a central authority: registry changes are signed events decided by a
majority of the member agencies, taking effect live, in log order, as a hash-linked chain of
registry versions. Routed through a real router in memory (no Kafka); each attack test is
named after the attack it stops."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from jointbus.agents.routing import Router
from jointbus.audit.errors import VerificationError
from jointbus.audit.verifier import Report, Verifier
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import ContractError
from jointbus.schemas.governance import (
    ChairPassed,
    KeyAdded,
    KeyRevoked,
    MemberAdmitted,
    MemberSuspended,
    PolicyChanged,
    next_version,
    proposal,
)
from jointbus.schemas.ids import parse_time
from jointbus.schemas.keys import Keyring, new_federation, new_key
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import ROUTER, Member, Registry
from jointbus.schemas.registry_chain import RegistryVersion, next_from_evidence
from jointbus.streams.topics import REGISTRY_TOPIC, outbox
from tests.samples import SAMPLES

T0 = datetime(2026, 11, 25, 20, 18, tzinfo=UTC)
GOV = "governance/registry"


class Bus:
    """A router in memory, a clock that moves a second per event, and the records written."""

    def __init__(self) -> None:
        self.genesis, self.rings = new_federation(T0 - timedelta(days=1))
        self.router = Router(self.genesis, self.rings[ROUTER], Rules())
        self.records: list[AuditRecord] = []
        self.offsets: dict[str, int] = {}
        self.now = T0
        #: every record written to jointbus.registry, in order
        self.written: list[RegistryVersion] = []

    @property
    def registry(self) -> Registry:
        return self.router.registry

    def others(self, agency: str) -> list[str]:
        return [a for a in self.registry.voters if a != agency]

    def send(
        self,
        agency: str,
        family: str,
        subject: str,
        to: list[str],
        payload: Any,
        *,
        ring: Keyring | None = None,
        believed: Registry | None = None,
    ) -> AuditRecord:
        """``agency`` signs with ``ring`` the key that ``believed`` (default: the registry in
        force) says is current, and sends through its outbox."""
        self.now += timedelta(seconds=1)
        env = compose(
            keyring=ring or self.rings[agency],
            registry=believed or self.registry,
            event_type=family,
            subject=subject,
            recipients=to,
            payload=payload,
            now=self.now,
        )
        return self.send_env(agency, env)

    def send_env(self, agency: str, env: dict[str, Any]) -> AuditRecord:
        topic = outbox(agency)
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        routed = self.router.route(to_wire(env), topic, 0, offset, int(self.now.timestamp() * 1000))
        assert routed.record is not None
        self.records.append(routed.record)
        for out in routed.outputs:
            if out.topic == REGISTRY_TOPIC:
                self.written.append(RegistryVersion.model_validate_json(out.value))
        return routed.record

    def propose(self, agency: str, changes: list[Any], reason: str = "联席会议决定") -> AuditRecord:
        payload = proposal(self.registry, changes, self.now + timedelta(seconds=1), reason)
        return self.send(agency, "governance.proposed", GOV, self.others(agency), payload)

    def approve(self, agency: str, record: AuditRecord, digest: str | None = None) -> AuditRecord:
        assert record.event is not None
        new_digest = digest or record.event["data"]["new_digest"]
        payload = {"proposal_id": record.event_id, "new_digest": new_digest}
        return self.send(agency, "governance.approved", GOV, self.others(agency), payload)

    def revoke_own(self, agency: str, kid: str, reason: str = "设备遗失") -> AuditRecord:
        """``agency`` revokes its own key ``kid`` at once (`govern revoke-own`)."""
        payload = {"kid": kid, "reason": reason}
        return self.send(agency, "governance.key_revoked", GOV, self.others(agency), payload)

    def issue(
        self, agency: str, *, ring: Keyring | None = None, believed: Registry | None = None
    ) -> AuditRecord:
        """An ordinary event (a rectification to sc-zigong, or to sc-luzhou from sc-zigong)."""
        to = ["sc-luzhou"] if agency == "sc-zigong" else ["sc-zigong"]
        subject, payload = f"rectification/{uuid.uuid4()}", SAMPLES["rectification.issued"]
        return self.send(agency, "rectification.issued", subject, to, payload, ring=ring, believed=believed)


VOTERS = ["sc-luzhou", "sc-neijiang", "sc-yibin", "cq-jiangjin", "cq-yongchuan", "cq-dazu", "cq-rongchang"]


def rotation(bus: Bus, agency: str = "sc-zigong") -> tuple[KeyAdded, Keyring]:
    """A new signing key for ``agency`` from the next second; its old keys retire then."""
    at = bus.now + timedelta(seconds=1)
    record, seed = new_key(agency, "sign", 2, at - timedelta(seconds=1))
    ring = Keyring(owner=agency, keys={**bus.rings[agency].keys, record.kid: seed})
    return KeyAdded(key=record, retire_after=at + timedelta(minutes=10)), ring


def test_key_rotation_takes_effect_when_a_majority_signed_it() -> None:
    """Proposer plus three approvals (4 of 8) change nothing: the new key is unknown. The
    fifth signature brings registry v2 into force at once, linked to v1 by its digest; the
    new key signs from then on; every decision names the version it was made under."""
    bus = Bus()
    change, ring = rotation(bus)
    proposed = bus.propose("sc-zigong", [change])
    assert proposed.decision == "accepted"
    for agency in VOTERS[:3]:
        assert bus.approve(agency, proposed).decision == "accepted"
    assert bus.registry.version == 1
    hoped = next_version(bus.registry, [change], bus.now)  # the version the proposer hopes for
    early = bus.issue("sc-zigong", ring=ring, believed=hoped)
    assert (early.decision, early.reason) == ("rejected", "unknown_key")
    deciding = bus.approve(VOTERS[3], proposed)
    assert (deciding.decision, deciding.registry_version) == ("accepted", 1)
    assert bus.registry.version == 2
    assert bus.registry.previous == bus.genesis.digest
    assert bus.registry.digest == proposed.event["data"]["new_digest"]  # type: ignore[index]
    later = bus.issue("sc-zigong", ring=ring)
    assert (later.decision, later.registry_version) == ("accepted", 2)
    assert later.event["sigkeyid"] == "sc-zigong#sig-2"  # type: ignore[index]
    assert bus.approve(VOTERS[4], proposed).reason == "bad_transition"  # decided: no longer open


def test_one_vote_short_of_quorum_changes_nothing() -> None:
    """A suspension signed by four agencies (one short of five) never takes effect: the
    member still publishes, and the proposal stays open, audited."""
    bus = Bus()
    proposed = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    for agency in VOTERS[:3]:
        bus.approve(agency, proposed)
    assert bus.registry.version == 1
    assert bus.issue("cq-dazu").decision == "accepted"
    assert all(r.decision == "accepted" for r in bus.records)


def test_forged_registry_change_is_refused() -> None:
    """A proposal whose digest is not what its changes produce (it would let signers approve
    one thing and bring another into force), and approvals naming another digest, are refused."""
    bus = Bus()
    change, _ = rotation(bus)
    payload = proposal(bus.registry, [change], bus.now + timedelta(seconds=1), "x")
    payload["new_digest"] = "f" * 64
    forged = bus.send("sc-zigong", "governance.proposed", GOV, bus.others("sc-zigong"), payload)
    assert (forged.decision, forged.reason) == ("rejected", "bad_transition")
    honest = bus.propose("sc-zigong", [change])
    assert bus.approve("sc-luzhou", honest, digest="e" * 64).reason == "bad_transition"


def test_replayed_approval_counts_once() -> None:
    """The same agency approving twice (a new event each time) counts once; the same signed
    approval sent again is a duplicate."""
    bus = Bus()
    proposed = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    first = bus.approve("sc-luzhou", proposed)
    assert bus.approve("sc-luzhou", proposed).reason == "bad_transition"
    assert first.event is not None
    assert bus.send_env("sc-luzhou", first.event).reason == "duplicate"


def test_registry_rollback_and_stale_proposals_are_refused() -> None:
    """Once v2 is in force, a proposal on v1 (replaying an old version's base) is refused, and
    approvals of a proposal made on v1 no longer count."""
    bus = Bus()
    stale = bus.propose("sc-luzhou", [MemberSuspended(member="cq-dazu")])
    winner = bus.propose("sc-zigong", [MemberSuspended(member="cq-jiangjin")])
    for agency in ["sc-neijiang", "sc-yibin", "cq-yongchuan", "cq-rongchang"]:
        bus.approve(agency, winner)
    assert bus.registry.version == 2
    assert bus.approve("sc-yibin", stale).reason == "bad_transition"
    old = proposal(bus.genesis, [MemberSuspended(member="cq-dazu")], bus.now + timedelta(seconds=1), "x")
    rollback = bus.send("sc-luzhou", "governance.proposed", GOV, bus.others("sc-luzhou"), old)
    assert (rollback.decision, rollback.reason) == ("rejected", "bad_transition")


def test_change_signed_by_a_suspended_member_is_refused() -> None:
    """A suspended agency may neither publish nor vote."""
    bus = Bus()
    proposed = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    for agency in ["sc-luzhou", "sc-neijiang", "sc-yibin", "cq-yongchuan"]:
        bus.approve(agency, proposed)
    assert bus.registry.member("cq-dazu").suspended
    assert bus.registry.quorum == 4  # a majority of the seven who still vote
    again = bus.propose("sc-zigong", [MemberSuspended(member="cq-jiangjin")])
    vote = bus.approve("cq-dazu", again)
    assert (vote.decision, vote.reason) == ("rejected", "not_authorized")
    assert bus.issue("cq-dazu").reason == "not_authorized"


def test_self_revocation_takes_effect_on_the_next_event() -> None:
    """An agency revokes its own key with one signature; the next event with that key is
    refused; nobody revokes another agency's key that way."""
    bus = Bus()
    kid = bus.registry.current_key("cq-jiangjin", "sign", bus.now).kid
    mine = bus.send(
        "cq-jiangjin",
        "governance.key_revoked",
        GOV,
        bus.others("cq-jiangjin"),
        {"kid": kid, "reason": "签名设备遗失"},
    )
    assert mine.decision == "accepted"
    assert bus.registry.version == 2
    assert bus.issue("cq-jiangjin", believed=bus.genesis).reason == "key_revoked"
    kid = bus.registry.current_key("cq-dazu", "sign", bus.now).kid
    theirs = bus.send(
        "sc-zigong", "governance.key_revoked", GOV, bus.others("sc-zigong"), {"kid": kid, "reason": "x"}
    )
    assert (theirs.decision, theirs.reason) == ("rejected", "not_authorized")


def test_an_agency_admitted_by_quorum_publishes_right_after() -> None:
    """sc-leshan is unknown until a majority admits it; then its events are accepted."""
    bus = Bus()
    sign, sign_seed = new_key("sc-leshan", "sign", 1, bus.now)
    seal, seal_seed = new_key("sc-leshan", "seal", 1, bus.now)
    ring = Keyring(owner="sc-leshan", keys={sign.kid: sign_seed, seal.kid: seal_seed})
    bus.rings["sc-leshan"] = ring
    leshan = Member(
        id="sc-leshan",
        name_zh="乐山市纪委监委",
        name_en="Leshan",
        kind="agency",
        region="sichuan",
        publish=bus.registry.member("sc-zigong").publish,
    )
    admission = MemberAdmitted(member=leshan, keys=(sign, seal))
    before = bus.send_env("sc-leshan", _signed_by_outsider(bus, ring, admission))
    assert before.reason == "unknown_sender"
    proposed = bus.propose("sc-zigong", [admission])
    for agency in VOTERS[:4]:
        bus.approve(agency, proposed)
    assert "sc-leshan" in bus.registry.voters
    assert bus.issue("sc-leshan").decision == "accepted"


def _signed_by_outsider(bus: Bus, ring: Keyring, admission: MemberAdmitted) -> dict[str, Any]:
    """An event sc-leshan signs while only it believes it is a member."""
    believed = next_version(bus.registry, [admission], bus.now)
    bus.now += timedelta(seconds=1)
    return compose(
        keyring=ring,
        registry=believed,
        event_type="rectification.issued",
        subject=f"rectification/{uuid.uuid4()}",
        recipients=["sc-zigong"],
        payload=SAMPLES["rectification.issued"],
        now=bus.now,
    )


def verify(records: list[AuditRecord], genesis: Registry) -> Report:
    """`audit verify`'s checks over these records, from the genesis registry."""
    verifier = Verifier(genesis, [])
    for offset, record in enumerate(records):
        verifier.feed(offset, record.position.encode(), record.to_bytes())
    return verifier.finish()


def test_audit_verify_follows_the_registry_chain() -> None:
    """A log spanning three registry versions verifies from the genesis alone; altering the
    registry event that made v2 is named (the decisions after it no longer re-derive)."""
    bus = Bus()
    first = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    for agency in ["sc-luzhou", "sc-neijiang", "sc-yibin", "cq-yongchuan"]:
        bus.approve(agency, first)
    kid = bus.registry.current_key("cq-jiangjin", "sign", bus.now).kid
    bus.send(
        "cq-jiangjin",
        "governance.key_revoked",
        GOV,
        bus.others("cq-jiangjin"),
        {"kid": kid, "reason": "遗失"},
    )
    bus.issue("sc-yibin")
    assert bus.registry.version == 3
    assert {r.registry_version for r in bus.records} == {1, 2, 3}
    assert verify(bus.records, bus.genesis).leaves == len(bus.records)
    altered = list(bus.records)
    deciding = altered[4]  # the fourth approval, which brought v2 into force
    assert deciding.registry_version == 1
    altered[4] = deciding.model_copy(update={"registry_version": 2})
    with pytest.raises(VerificationError) as info:
        verify(altered, bus.genesis)
    assert info.value.why == "decision_mismatch"
    assert "registry v2" in info.value.message


def test_a_restarted_router_rebuilds_the_registry_in_force_from_the_log() -> None:
    """Folding the audit log into a fresh router (what a restart does) ends in the same
    registry version, and with the newest version's record as the adopting decision wrote
    it to the registry topic; that record proves itself from the genesis (what agencies'
    Subscribers check)."""
    bus = Bus()
    proposed = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    for agency in ["sc-luzhou", "sc-neijiang", "sc-yibin", "cq-yongchuan"]:
        bus.approve(agency, proposed)
    restarted = Router(bus.genesis, bus.rings[ROUTER], Rules())
    for record in bus.records:
        restarted.fold(record)
    assert restarted.registry.digest == bus.registry.digest
    (written,) = restarted.versions.values()
    version = RegistryVersion.model_validate_json(written.value)
    assert next_from_evidence(bus.genesis, version).digest == bus.registry.digest
    forged = version.model_copy(update={"evidence": version.evidence[:-1]})  # one signature short
    with pytest.raises(ContractError):
        next_from_evidence(bus.genesis, forged)


def test_a_forked_registry_version_is_refused() -> None:
    """A v2 that is not what its evidence brings into force (the operator swapped a key or
    the chair in it), or that does not follow v1, is refused by every reader."""
    bus = Bus()
    proposed = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    for agency in ["sc-luzhou", "sc-neijiang", "sc-yibin", "cq-yongchuan"]:
        bus.approve(agency, proposed)
    (written,) = bus.router.versions.values()
    honest = RegistryVersion.model_validate_json(written.value)
    swapped = honest.registry.model_copy(update={"chair": "sc-zigong"})
    fork = honest.model_copy(update={"registry": Registry.model_validate(swapped.model_dump())})
    with pytest.raises(ContractError, match="does not bring"):
        next_from_evidence(bus.genesis, fork)
    unlinked = Registry.model_validate({**honest.registry.model_dump(), "previous": "0" * 64})
    with pytest.raises(ContractError, match="does not follow"):
        next_from_evidence(bus.genesis, honest.model_copy(update={"registry": unlinked}))


def test_the_old_key_stops_when_its_retirement_comes() -> None:
    """Until the rotation is in force the old key signs; after it, it signs until the
    agreed retirement, and an event with it after that is refused (key_expired)."""
    bus = Bus()
    change, ring = rotation(bus)
    old = bus.rings["sc-zigong"]
    assert bus.issue("sc-zigong", ring=old).decision == "accepted"
    proposed = bus.propose("sc-zigong", [change])
    for agency in VOTERS[:4]:
        bus.approve(agency, proposed)
    assert change.retire_after is not None
    assert bus.issue("sc-zigong", ring=old, believed=bus.genesis).decision == "accepted"  # overlap
    bus.now = change.retire_after + timedelta(seconds=1)
    late = bus.issue("sc-zigong", ring=old, believed=bus.genesis)
    assert (late.decision, late.reason) == ("rejected", "key_expired")
    assert bus.issue("sc-zigong", ring=ring).decision == "accepted"


def test_genesis_is_signed_by_every_founding_agency() -> None:
    """`keys init` has all eight founding agencies sign the genesis digest; a missing or
    forged signature, or signatures over another registry, are refused."""
    from jointbus.schemas.registry_chain import check_genesis, sign_genesis

    bus = Bus()
    signed = sign_genesis(bus.genesis, bus.rings)
    check_genesis(bus.genesis, signed)
    missing = signed.model_copy(
        update={"signatures": {k: v for k, v in signed.signatures.items() if k != "cq-dazu"}}
    )
    with pytest.raises(ContractError, match="cq-dazu did not sign"):
        check_genesis(bus.genesis, missing)
    kid, _ = signed.signatures["sc-zigong"].split(" ")
    forged = {
        **signed.signatures,
        "sc-zigong": signed.signatures["sc-luzhou"].replace("sc-luzhou#", "sc-zigong#"),
    }
    with pytest.raises(ContractError, match="sc-zigong"):
        check_genesis(bus.genesis, signed.model_copy(update={"signatures": forged}))
    other = next_version(bus.genesis, [MemberSuspended(member="cq-dazu")], bus.now)
    with pytest.raises(ContractError, match="another registry"):
        check_genesis(other, signed)
    assert kid.startswith("sc-zigong#sig-")


def test_one_agency_cannot_back_two_proposals_on_one_version() -> None:
    """Fork and flood: an agency backs one proposal per registry version (proposing counts),
    so it can neither fill the open slots nor help two majorities form on one version."""
    bus = Bus()
    first = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    second = bus.propose("sc-zigong", [MemberSuspended(member="cq-jiangjin")])
    assert (second.decision, second.reason) == ("rejected", "bad_transition")
    rival = bus.propose("sc-luzhou", [MemberSuspended(member="cq-jiangjin")])
    assert rival.decision == "accepted"
    assert bus.approve("sc-neijiang", first).decision == "accepted"
    switched = bus.approve("sc-neijiang", rival)  # already backs the first
    assert (switched.decision, switched.reason) == ("rejected", "bad_transition")


def test_a_key_change_needs_its_owners_own_signature() -> None:
    """Identity takeover: a majority adding a key for sc-luzhou (and retiring its own) does
    nothing until sc-luzhou itself signs; the services' keys are not the agencies' to change."""
    bus = Bus()
    record, _ = new_key("sc-luzhou", "sign", 2, bus.now)
    takeover = bus.propose("sc-zigong", [KeyAdded(key=record, retire_after=bus.now + timedelta(seconds=5))])
    for agency in ["sc-neijiang", "sc-yibin", "cq-yongchuan", "cq-rongchang", "cq-jiangjin"]:
        bus.approve(agency, takeover)
    assert bus.registry.version == 1  # six signatures, but not the owner's
    assert bus.approve("sc-luzhou", takeover).decision == "accepted"
    assert bus.registry.version == 2
    router_key, _ = new_key("svc-router", "sign", 9, bus.now)
    with pytest.raises(ContractError, match="services"):
        next_version(bus.registry, [KeyAdded(key=router_key)], bus.now)


def test_a_stolen_old_key_cannot_revoke_the_new_one() -> None:
    """During a rotation's overlap, whoever holds the old key cannot revoke the new one."""
    bus = Bus()
    change, _ = rotation(bus)
    proposed = bus.propose("sc-zigong", [change])
    for agency in VOTERS[:4]:
        bus.approve(agency, proposed)
    old = bus.rings["sc-zigong"]
    theft = bus.send(
        "sc-zigong",
        "governance.key_revoked",
        GOV,
        bus.others("sc-zigong"),
        {"kid": change.key.kid, "reason": "x"},
        ring=old,
        believed=bus.genesis,
    )
    assert (theft.decision, theft.reason) == ("rejected", "not_authorized")


def test_a_revocation_dated_ahead_takes_effect_when_it_arrives() -> None:
    """A self-revocation signed four minutes in the future cannot keep the key alive until
    then: it takes effect when it arrives, and it must reach every member."""
    bus = Bus()
    kid = bus.registry.current_key("cq-jiangjin", "sign", bus.now).kid
    partial = bus.send(
        "cq-jiangjin", "governance.key_revoked", GOV, ["sc-luzhou"], {"kid": kid, "reason": "x"}
    )
    assert (partial.decision, partial.reason) == ("rejected", "not_authorized")
    bus.now += timedelta(seconds=1)
    ahead = compose(
        keyring=bus.rings["cq-jiangjin"],
        registry=bus.registry,
        event_type="governance.key_revoked",
        subject=GOV,
        recipients=bus.others("cq-jiangjin"),
        payload={"kid": kid, "reason": "签名设备遗失"},
        now=bus.now + timedelta(minutes=4),
    )
    assert bus.send_env("cq-jiangjin", ahead).decision == "accepted"
    assert bus.registry.key(kid).revoked_at == bus.now
    assert bus.issue("cq-jiangjin", believed=bus.genesis).reason == "key_revoked"


def test_registry_changes_that_would_break_governance_are_refused() -> None:
    """Times without a zone, a chair who is suspended in the same change, and a registry
    left with fewer than three voters are refused before anyone signs them."""
    bus = Bus()
    record, _ = new_key("sc-zigong", "sign", 2, bus.now)
    with pytest.raises(pydantic.ValidationError):
        KeyAdded.model_validate(
            {"key": record.model_dump(mode="json"), "retire_after": "2026-11-25T20:18:00"}
        )
    both = [MemberSuspended(member="sc-yibin"), ChairPassed(chair="sc-yibin")]
    with pytest.raises(ContractError, match="chair"):
        next_version(bus.registry, both, bus.now)
    everyone = [MemberSuspended(member=a) for a in bus.registry.voters[:6]]
    with pytest.raises(ContractError, match="three voting"):
        next_version(bus.registry, everyone, bus.now)


def test_an_oversized_version_header_is_ignored() -> None:
    """A relabelled delivery with a 5,000-digit version header cannot crash a Subscriber."""
    from jointbus.streams.topics import REGISTRY_VERSION_HEADER, registry_version_of

    assert registry_version_of([(REGISTRY_VERSION_HEADER, b"9" * 5000)]) is None
    assert registry_version_of([(REGISTRY_VERSION_HEADER, b"7")]) == 7


def test_auditors_name_a_registry_topic_the_log_never_had() -> None:
    """The operator writes to jointbus.registry a version the log never brought into force
    (a fork shown to agencies' Subscribers): `audit verify` names it (registry_fork)."""
    from jointbus.audit.verifier import check_registry_feed

    bus = Bus()
    proposed = bus.propose("sc-zigong", [MemberSuspended(member="cq-dazu")])
    for agency in ["sc-luzhou", "sc-neijiang", "sc-yibin", "cq-yongchuan"]:
        bus.approve(agency, proposed)
    (written,) = bus.router.versions.values()
    assert check_registry_feed(bus.router.ledger.versions, [written.value]) == 1
    fork = written.value.replace(b'"chair":"cq-rongchang"', b'"chair":"sc-zigong"')
    assert fork != written.value
    with pytest.raises(VerificationError) as info:
        check_registry_feed(bus.router.ledger.versions, [written.value, fork])
    assert info.value.why == "registry_fork"


def test_the_agencies_change_how_they_decide() -> None:
    """A majority raises the quorum to more than two thirds (6 of 8) and sets the clue
    acknowledgement deadline to 48 hours: the next change needs six signatures, and a clue
    transferred after it is due in 48 hours."""
    bus = Bus()
    proposed = bus.propose("sc-zigong", [PolicyChanged(quorum_percent=66, ack_within_hours=48)])
    for agency in VOTERS[:4]:
        bus.approve(agency, proposed)
    assert (bus.registry.quorum, bus.registry.policy.ack_within_hours) == (6, 48)
    nothing = [PolicyChanged()]
    with pytest.raises(ContractError, match="changes something"):
        next_version(bus.registry, nothing, bus.now)
    suspend = bus.propose("sc-luzhou", [MemberSuspended(member="cq-dazu")])
    for agency in ["sc-neijiang", "sc-yibin", "cq-yongchuan", "cq-rongchang"]:
        bus.approve(agency, suspend)
    assert bus.registry.version == 2  # five of eight no longer suffice
    bus.approve("cq-jiangjin", suspend)
    assert bus.registry.version == 3
    clue = f"clue/{uuid.uuid4()}"
    sent = bus.send("sc-zigong", "clue.transferred", clue, ["cq-yongchuan"], SAMPLES["clue.transferred"])
    assert sent.decision == "accepted"
    due = bus.router.dues[clue]
    assert due == bus.now + timedelta(hours=48)


# ------------------------------------------------------------------ governance cannot be dodged
SUSPENDERS = ["sc-luzhou", "sc-neijiang", "sc-yibin"]  # with the proposer: four of eight


def _suspension_dodged(bus: Bus) -> tuple[AuditRecord, AuditRecord]:
    """cq-rongchang proposes suspending sc-zigong, three more approve (4 of 8, 5 needed), and
    sc-zigong revokes its own lesser key (no quorum: registry v2). The proposal and the
    self-revocation, as recorded."""
    proposed = bus.propose("cq-rongchang", [MemberSuspended(member="sc-zigong")], "暂停自贡市")
    for agency in SUSPENDERS:
        assert bus.approve(agency, proposed).decision == "accepted"
    dodge = bus.revoke_own("sc-zigong", "sc-zigong#seal-1")
    assert dodge.decision == "accepted"
    assert bus.registry.version == 2
    return proposed, dodge


def test_a_member_cannot_void_its_own_suspension_by_revoking_its_own_key() -> None:
    """The self-revocation brings v2 into force but voids nothing: the fifth approval, naming
    the digest every other signer approved (the version on v1), counts; the suspension takes
    effect as v3 on top of v2 (the key stays revoked) and sc-zigong is refused from then on."""
    bus = Bus()
    proposed, _ = _suspension_dodged(bus)
    v2 = bus.registry
    fifth = bus.approve("cq-yongchuan", proposed)
    assert (fifth.decision, fifth.registry_version) == ("accepted", 2)
    assert bus.registry.version == 3
    assert bus.registry.previous == v2.digest
    assert bus.registry.member("sc-zigong").suspended
    assert bus.registry.key("sc-zigong#seal-1").revoked_at is not None
    on_v1 = next_version(
        bus.genesis, [MemberSuspended(member="sc-zigong")], parse_time(proposed.event["time"])
    )  # type: ignore[index]
    assert on_v1.digest == proposed.event["data"]["new_digest"]  # type: ignore[index]  # what was signed
    assert bus.issue("sc-zigong").reason == "not_authorized"
    assert bus.approve("cq-dazu", proposed).reason == "bad_transition"  # decided: closed


def test_a_carried_proposal_whose_revocation_became_moot_still_takes_effect() -> None:
    """cq-dazu consents to "revoke cq-dazu#seal-1 and suspend sc-zigong", then revokes that
    key itself to void the proposal: the revocation is moot (the key stays revoked as its
    owner did it), the suspension still takes effect with the next approval."""
    bus = Bus()
    changes: list[Any] = [
        KeyRevoked(kid="cq-dazu#seal-1", at=bus.now, reason="联席会议决定"),
        MemberSuspended(member="sc-zigong"),
    ]
    proposed = bus.propose("cq-rongchang", changes)
    for agency in ["cq-dazu", "sc-luzhou", "sc-neijiang"]:
        assert bus.approve(agency, proposed).decision == "accepted"
    assert bus.revoke_own("cq-dazu", "cq-dazu#seal-1", "自行吊销").decision == "accepted"
    revoked = bus.registry.key("cq-dazu#seal-1")
    assert bus.approve("sc-yibin", proposed).decision == "accepted"
    assert bus.registry.version == 3
    assert bus.registry.member("sc-zigong").suspended
    assert bus.registry.key("cq-dazu#seal-1") == revoked  # the owner's revocation, unchanged


def test_a_self_revocation_does_not_free_a_backer_to_back_a_second_proposal() -> None:
    """Carried proposals keep their backers: sc-luzhou, backing the suspension, cannot back a
    rival proposal made on v2 (two majorities between two decisions would need it twice)."""
    bus = Bus()
    _suspension_dodged(bus)
    rival = bus.propose("cq-jiangjin", [ChairPassed(chair="sc-yibin")])
    assert rival.decision == "accepted"
    switched = bus.approve("sc-luzhou", rival)
    assert (switched.decision, switched.reason) == ("rejected", "bad_transition")


def test_an_auditor_re_derives_a_suspension_carried_across_a_self_revocation() -> None:
    """`audit verify` re-derives the whole history from the genesis; a restarted router folds
    it into the same registry; every record on jointbus.registry proves itself from the one
    before (the carried version from its base, v1, through the self-revocation)."""
    bus = Bus()
    proposed, _ = _suspension_dodged(bus)
    bus.approve("cq-yongchuan", proposed)
    bus.issue("sc-yibin")
    assert verify(bus.records, bus.genesis).leaves == len(bus.records)
    restarted = Router(bus.genesis, bus.rings[ROUTER], Rules())
    for record in bus.records:
        restarted.fold(record)
    assert restarted.registry.digest == bus.registry.digest
    v2, v3 = bus.written
    assert v2.base is None
    assert len(v2.evidence) == 1
    assert v3.base is not None
    assert v3.base.digest == bus.genesis.digest
    assert len(v3.evidence) == 6  # the proposal, three approvals, the self-revocation, the fifth
    registry = bus.genesis
    for version in bus.written:
        registry = next_from_evidence(registry, version)
    assert registry.digest == bus.registry.digest


def test_a_forged_carry_forward_is_refused() -> None:
    """What a lying router might write for the carried version is refused by every reader:
    no base (the proposal is not on v2), a base it was not made on, evidence without the
    self-revocation or one approval short, a base not older than the version before, or a
    version that applied the moot revocation its own way."""
    bus = Bus()
    proposed, _ = _suspension_dodged(bus)
    bus.approve("cq-yongchuan", proposed)
    v2, v3 = bus.written
    after_v2 = next_from_evidence(bus.genesis, v2)
    assert next_from_evidence(after_v2, v3).digest == bus.registry.digest
    other_base = Registry.model_validate({**bus.genesis.model_dump(mode="json"), "chair": "sc-yibin"})
    skipped = [e for e in v3.evidence if e not in v2.evidence]
    forgeries = {
        "no base": v3.model_copy(update={"base": None}),
        "another base": v3.model_copy(update={"base": other_base}),
        "no self-revocation": v3.model_copy(update={"evidence": skipped}),
        "one approval short": v3.model_copy(update={"evidence": v3.evidence[:2] + v3.evidence[3:]}),
        "base not older": v3.model_copy(update={"base": after_v2}),
    }
    for what, forged in forgeries.items():
        with pytest.raises(ContractError) as info:
            next_from_evidence(after_v2, forged)
        assert info.value.reason == "bad_transition", what
    own_way = next_version(v2.registry, [MemberSuspended(member="sc-zigong")], bus.now)
    with pytest.raises(ContractError, match="does not bring"):
        next_from_evidence(after_v2, v3.model_copy(update={"registry": own_way}))


def test_a_logged_carry_forward_across_a_majority_version_is_a_decision_mismatch() -> None:
    """A majority's version closes the other open proposals (it may change who votes and how
    many are needed): an approval of a closed proposal is refused, and a log claiming it was
    accepted does not re-derive."""
    bus = Bus()
    closed = bus.propose("cq-rongchang", [MemberSuspended(member="sc-zigong")])
    winner = bus.propose("sc-yibin", [ChairPassed(chair="sc-yibin")])
    for agency in ["sc-luzhou", "sc-neijiang", "cq-jiangjin", "cq-yongchuan"]:
        bus.approve(agency, winner)
    assert bus.registry.version == 2
    late = bus.approve("cq-dazu", closed)
    assert (late.decision, late.reason) == ("rejected", "bad_transition")
    forged = list(bus.records)
    forged[-1] = late.model_copy(update={"decision": "accepted", "reason": None, "detail": None})
    with pytest.raises(VerificationError) as info:
        verify(forged, bus.genesis)
    assert info.value.why == "decision_mismatch"
