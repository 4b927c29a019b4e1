"""Governance on the running bus: a change the member agencies agree on takes effect in the
running worker and at the agencies' own Subscribers and Publishers, with no restart; an
agency's self-revocation stops its key on the next event; the audit log verifies across the
registry versions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jointbus.processes import WorkerProcess
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.governance import KeyAdded, MemberAdmitted, next_version, proposal
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring, new_key
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import Registry
from jointbus.streams import keystore
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import AUDIT_TOPIC
from tests.conftest import Bus, _broker
from tests.harness import collect, eventually, jointbus_cli, make_federation
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker
GOV = "governance/registry"


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    """A bus of its own: its registry changes under the tests."""
    for broker in _broker(tmp_path_factory, "governance-kafka"):
        home = tmp_path_factory.mktemp("governance-bus")
        registry, rings = make_federation(home)
        worker = WorkerProcess(home, broker.bootstrap).start()
        yield Bus(broker.bootstrap, home, registry, rings, worker)
        worker.stop()


async def decided(bus: Bus, event_id: str) -> AuditRecord:
    """The audit record of ``event_id`` (bounded wait, loud failure)."""

    async def logged() -> AuditRecord | None:
        async for _, _, value in read_topic(bus.bootstrap, AUDIT_TOPIC):
            record = AuditRecord.model_validate_json(value)
            if record.event_id == event_id:
                return record
        return None

    return await eventually(logged, within=30, what=f"the decision on {event_id}")


async def send(
    bus: Bus,
    agency: str,
    ring: Keyring,
    registry: Registry,
    family: str,
    subject: str,
    to: list[str],
    payload: Any,
) -> str:
    """``agency`` signs under ``registry`` (what it believes is in force) and publishes."""
    env = compose(
        keyring=ring,
        registry=registry,
        event_type=family,
        subject=subject,
        recipients=to,
        payload=payload,
        now=utcnow(),
    )
    async with Publisher(agency, ring, registry, bus.bootstrap, follow_registry=False) as pub:
        await (await pub.send_wire(to_wire(env), subject))
    return str(env["id"])


def voters(registry: Registry, but: str) -> list[str]:
    return [a for a in registry.voters if a != but]


async def test_key_rotation_agreed_by_a_majority_takes_effect_without_restart(bus: Bus) -> None:
    """sc-zigong proposes its new signing key; until five agencies signed, an event with it
    is refused (unknown_key); then the running worker accepts it, sc-luzhou's Subscriber
    (started with the genesis registry) follows the registry and receives it, and sc-zigong's next
    Publisher signs with the new key by itself."""
    v1 = bus.registry
    now = utcnow()
    record, seed = new_key("sc-zigong", "sign", 2, now - timedelta(seconds=5))
    ring = Keyring(owner="sc-zigong", keys={**bus.rings["sc-zigong"].keys, record.kid: seed})
    keystore.save_keyring(bus.home / "keys", ring)  # as `govern propose rotate-key` keeps it
    bus.rings["sc-zigong"] = ring
    change = KeyAdded(key=record, retire_after=now + timedelta(hours=1))
    hoped = next_version(v1, [change], now)
    early = await send(
        bus,
        "sc-zigong",
        ring,
        hoped,
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["sc-luzhou"],
        SAMPLES["rectification.issued"],
    )
    assert (await decided(bus, early)).reason == "unknown_key"

    zigong = bus.rings["sc-zigong"]
    payload = proposal(v1, [change], now, "联席会议同意自贡市更换签名密钥")
    env = compose(
        keyring=zigong,
        registry=v1,
        event_type="governance.proposed",
        subject=GOV,
        recipients=voters(v1, "sc-zigong"),
        payload=payload,
        now=now,
    )
    async with Publisher("sc-zigong", zigong, v1, bus.bootstrap, follow_registry=False) as pub:
        await (await pub.send_wire(to_wire(env), GOV))
    assert (await decided(bus, env["id"])).decision == "accepted"
    for agency in ["sc-luzhou", "sc-neijiang", "sc-yibin", "cq-yongchuan"]:
        approval = {"proposal_id": env["id"], "new_digest": payload["new_digest"]}
        vote = await send(
            bus, agency, bus.rings[agency], v1, "governance.approved", GOV, voters(v1, agency), approval
        )
        assert (await decided(bus, vote)).decision == "accepted"

    async with Publisher("sc-zigong", ring, v1, bus.bootstrap) as pub:  # follows the registry at start
        assert pub.registry.version == v1.version + 1
        later = await pub.publish(
            "rectification.issued",
            f"rectification/{uuid.uuid4()}",
            ["sc-luzhou"],
            SAMPLES["rectification.issued"],
        )
    record_later = await decided(bus, later)
    assert (record_later.decision, record_later.registry_version) == ("accepted", v1.version + 1)
    assert record_later.event is not None
    assert record_later.event["sigkeyid"] == "sc-zigong#sig-2"
    (arrived,) = await collect(
        "sc-luzhou", bus.rings["sc-luzhou"], v1, bus.bootstrap, lambda d: d.id == later, 1
    )
    assert arrived.envelope.sigkeyid == "sc-zigong#sig-2"


async def test_self_revocation_stops_the_key_on_the_next_event(bus: Bus) -> None:
    """cq-jiangjin revokes its own signing key with one signature; the next event signed with
    it is refused (key_revoked) by the running worker; the revocation reaches every member."""
    start = await Publisher("cq-jiangjin", bus.rings["cq-jiangjin"], bus.registry, bus.bootstrap).__aenter__()
    registry = start.registry
    await start.stop()
    kid = registry.current_key("cq-jiangjin", "sign", utcnow()).kid
    revoked = await send(
        bus,
        "cq-jiangjin",
        bus.rings["cq-jiangjin"],
        registry,
        "governance.key_revoked",
        GOV,
        voters(registry, "cq-jiangjin"),
        {"kid": kid, "reason": "签名设备遗失"},
    )
    assert (await decided(bus, revoked)).decision == "accepted"
    after = await send(
        bus,
        "cq-jiangjin",
        bus.rings["cq-jiangjin"],
        registry,
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["sc-zigong"],
        SAMPLES["rectification.issued"],
    )
    assert (await decided(bus, after)).reason == "key_revoked"
    # the revocation itself was rightly signed with that key, under the version before it:
    # recipients verify it under that version (named on the delivery), not refuse it
    ring = bus.rings["sc-zigong"]
    (seen,) = await collect("sc-zigong", ring, bus.registry, bus.bootstrap, lambda d: d.id == revoked, 1)
    assert seen.family == "governance.key_revoked"


async def test_audit_verify_spans_the_registry_versions(bus: Bus) -> None:
    """`jointbus audit verify` re-derives every decision under the version in force then,
    from the genesis registry on disk."""
    done = await jointbus_cli(bus.home, bus.bootstrap, "audit", "verify", "--grace", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit log OK" in done.stdout
    assert re.search(r"every record on jointbus.registry \([1-9][0-9]*\) matches it", done.stdout)  # no fork


async def test_operators_pass_the_chair_with_the_govern_commands(bus: Bus) -> None:
    """cq-rongchang's operator proposes passing the chair to sc-yibin; four other operators
    approve it from their inboxes; `govern status` shows the new version, proven from the
    genesis, and the running worker now takes meetings from sc-yibin only."""
    proposed = await jointbus_cli(
        bus.home, bus.bootstrap, "govern", "propose", "chair", "--as", "cq-rongchang", "sc-yibin"
    )
    assert proposed.returncode == 0, proposed.stderr
    found = re.search(r"proposed ([0-9a-f-]{36})", proposed.stdout)
    assert found, proposed.stdout
    (proposal_id,) = found.groups()
    await decided(bus, proposal_id)
    for agency in ["sc-zigong", "sc-luzhou", "sc-neijiang", "cq-yongchuan"]:
        approved = await jointbus_cli(
            bus.home, bus.bootstrap, "govern", "approve", "--as", agency, proposal_id
        )
        assert approved.returncode == 0, approved.stderr
        assert "chair.passed" in approved.stdout
        vote = re.search(r"approved: ([0-9a-f-]{36})", approved.stdout)
        assert vote, approved.stdout
        await decided(bus, vote.group(1))
    shown = await jointbus_cli(bus.home, bus.bootstrap, "govern", "status")
    assert shown.returncode == 0, shown.stderr
    assert "sc-yibin" in shown.stdout
    async with Publisher("sc-yibin", bus.rings["sc-yibin"], bus.registry, bus.bootstrap) as pub:
        assert pub.registry.chair == "sc-yibin"
        meeting = {**SAMPLES["meeting.held"], "chair": "sc-yibin"}
        held = await pub.publish("meeting.held", f"meeting/{uuid.uuid4()}", ["sc-zigong"], meeting)
    assert (await decided(bus, held)).decision == "accepted"


async def test_an_agency_admitted_by_a_majority_publishes_after_provisioning(bus: Bus) -> None:
    """sc-leshan is admitted by five agencies; `topics create` provisions it from the registry
    in force (not the keystore's genesis); a restarted worker reads its outbox, and its
    first event reaches sc-zigong, whose Subscriber learns the new member from the registry."""
    now = utcnow()
    sign, sign_seed = new_key("sc-leshan", "sign", 1, now - timedelta(seconds=5))
    seal, seal_seed = new_key("sc-leshan", "seal", 1, now - timedelta(seconds=5))
    ring = Keyring(owner="sc-leshan", keys={sign.kid: sign_seed, seal.kid: seal_seed})
    async with Publisher("sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap) as pub:
        registry = pub.registry  # the version in force
        template = registry.member("sc-zigong")
        leshan = template.model_copy(
            update={"id": "sc-leshan", "name_zh": "乐山市纪委监委", "name_en": "Leshan"}
        )
        admission = MemberAdmitted(member=leshan, keys=(sign, seal))
        payload = proposal(registry, [admission], now, "联席会议同意乐山市加入")
        others = [a for a in registry.voters if a != "sc-zigong"]
        proposal_id = await pub.publish("governance.proposed", GOV, others, payload, now=now)
    assert (await decided(bus, proposal_id)).decision == "accepted"
    for agency in ["sc-luzhou", "sc-neijiang", "cq-yongchuan", "cq-rongchang"]:
        approval = {"proposal_id": proposal_id, "new_digest": payload["new_digest"]}
        vote = await send(
            bus,
            agency,
            bus.rings[agency],
            registry,
            "governance.approved",
            GOV,
            voters(registry, agency),
            approval,
        )
        assert (await decided(bus, vote)).decision == "accepted"

    provisioned = await jointbus_cli(bus.home, bus.bootstrap, "topics", "create")
    assert provisioned.returncode == 0, provisioned.stderr
    assert "9 member agencies: 3 topics created" in provisioned.stdout, provisioned.stdout
    bus.worker.stop()
    bus.worker.start()  # reads the registry in force: the new member's outbox too
    async with Publisher("sc-leshan", ring, bus.registry, bus.bootstrap) as pub:
        first = await pub.publish(
            "rectification.issued",
            f"rectification/{uuid.uuid4()}",
            ["sc-zigong"],
            SAMPLES["rectification.issued"],
        )
    assert (await decided(bus, first)).decision == "accepted"
    (arrived,) = await collect(
        "sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap, lambda d: d.id == first, 1
    )
    assert arrived.envelope.sender == "sc-leshan"


async def test_keys_revoke_on_a_running_bus_is_the_owners_self_revocation(bus: Bus) -> None:
    """`jointbus keys revoke` (no --offline) publishes cq-dazu's own revocation: in force on
    the running worker at once, the keystore's registry file untouched."""
    before = (bus.home / "keys" / "registry.json").read_text()
    kid = "cq-dazu#sig-2"
    done = await jointbus_cli(bus.home, bus.bootstrap, "keys", "revoke", kid, "--reason", "笔记本电脑遗失")
    assert done.returncode == 0, done.stderr
    assert (bus.home / "keys" / "registry.json").read_text() == before
    async with Publisher("sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap) as pub:
        assert pub.registry.key(kid).revoked_at is not None


async def test_a_member_cannot_void_its_own_suspension_by_revoking_its_own_key(bus: Bus) -> None:
    """The attack as run: four agencies sign "suspend sc-zigong" (five needed); sc-zigong runs
    `govern revoke-own` on its lesser sealing key (no quorum: a new version). The fifth
    operator's `govern approve` still signs the proposal's digest and the running worker
    counts it: sc-zigong is suspended, an agency's Publisher proves the carried version from
    the genesis, and `audit verify` re-derives it all, the registry topic included."""
    async with Publisher("sc-luzhou", bus.rings["sc-luzhou"], bus.registry, bus.bootstrap) as pub:
        before = pub.registry
    assert before.quorum == 5
    proposed = await jointbus_cli(
        bus.home, bus.bootstrap, "govern", "propose", "suspend", "--as", "cq-rongchang", "sc-zigong",
        "--reason", "联席会议决定暂停自贡市",
    )  # fmt: skip
    assert proposed.returncode == 0, proposed.stderr
    found = re.search(r"proposed ([0-9a-f-]{36})", proposed.stdout)
    assert found, proposed.stdout
    proposal_id = found.group(1)
    record = await decided(bus, proposal_id)
    assert record.decision == "accepted"
    assert record.event is not None
    approval = {"proposal_id": proposal_id, "new_digest": record.event["data"]["new_digest"]}
    for agency in ["sc-luzhou", "sc-neijiang", "sc-yibin"]:  # four of five with the proposer
        vote = await send(
            bus,
            agency,
            bus.rings[agency],
            before,
            "governance.approved",
            GOV,
            voters(before, agency),
            approval,
        )
        assert (await decided(bus, vote)).decision == "accepted"

    dodge = await jointbus_cli(
        bus.home, bus.bootstrap, "govern", "revoke-own", "--as", "sc-zigong", "sc-zigong#seal-1",
        "--reason", "设备遗失",
    )  # fmt: skip
    assert dodge.returncode == 0, dodge.stderr
    revoked = re.search(r"revoked sc-zigong#seal-1: ([0-9a-f-]{36})", dodge.stdout)
    assert revoked, dodge.stdout
    assert (await decided(bus, revoked.group(1))).registry_version == before.version

    fifth = await jointbus_cli(
        bus.home, bus.bootstrap, "govern", "approve", "--as", "cq-yongchuan", proposal_id
    )
    assert fifth.returncode == 0, fifth.stdout + fifth.stderr
    assert "carried forward" in fifth.stdout
    vote_id = re.search(r"approved: ([0-9a-f-]{36})", fifth.stdout)
    assert vote_id, fifth.stdout
    counted = await decided(bus, vote_id.group(1))
    assert (counted.decision, counted.registry_version) == ("accepted", before.version + 1)

    async with Publisher("sc-luzhou", bus.rings["sc-luzhou"], bus.registry, bus.bootstrap) as pub:
        after = pub.registry  # followed from the genesis: every version proven by its evidence
    assert after.version == before.version + 2
    assert after.member("sc-zigong").suspended
    assert after.key("sc-zigong#seal-1").revoked_at is not None
    refused = await send(
        bus, "sc-zigong", bus.rings["sc-zigong"], before, "rectification.issued",
        f"rectification/{uuid.uuid4()}", ["sc-luzhou"], SAMPLES["rectification.issued"],
    )  # fmt: skip
    assert (await decided(bus, refused)).reason == "not_authorized"
    audited = await jointbus_cli(bus.home, bus.bootstrap, "audit", "verify", "--grace", "0")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert re.search(r"every record on jointbus.registry \([1-9][0-9]*\) matches it", audited.stdout)
