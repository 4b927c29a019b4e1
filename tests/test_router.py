"""Routing through the real worker: exact delivery, sealing end to end, and each attack
rejected, audited with its reason and answered with a signed rejection notice."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey as Key

from jointbus import attacks
from jointbus.schemas.b64 import b64d
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import ContractError, Reason
from jointbus.schemas.families.notice import RejectionNotice
from jointbus.schemas.ids import utcnow
from jointbus.schemas.keys import Keyring
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.sealing import open_sealed
from jointbus.schemas.signing import sign_envelope
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Delivery, Publisher
from jointbus.streams.topics import AUDIT_TOPIC
from tests.conftest import Bus
from tests.harness import collect, eventually, nothing_more
from tests.samples import SAMPLES

pytestmark = pytest.mark.broker


def about(subject: str) -> Any:
    return lambda d: d.envelope.subject == subject


def notice_for(event_id: str) -> Any:
    def match(d: Delivery) -> bool:
        return isinstance(d.payload, RejectionNotice) and d.payload.rejected_event_id == event_id

    return match


async def audit_of(bus: Bus, event_id: str, at_least: int = 1) -> list[AuditRecord]:
    """The audit records about ``event_id`` (waiting, bounded, until ``at_least`` are in)."""

    async def enough() -> list[AuditRecord] | None:
        records = [
            record
            async for _, _, value in read_topic(bus.bootstrap, AUDIT_TOPIC)
            if (record := AuditRecord.model_validate_json(value)).event_id == event_id
        ]
        return records if len(records) >= at_least else None

    return await eventually(enough, within=30, what=f"{at_least} audit records about {event_id}")


async def publish(
    bus: Bus,
    agency: str,
    family: str,
    subject: str,
    to: list[str],
    payload: dict[str, Any] | None = None,
    **kw: Any,
) -> str:
    async with Publisher(agency, bus.rings[agency], bus.registry, bus.bootstrap) as pub:
        return await pub.publish(family, subject, to, payload or SAMPLES[family], **kw)


async def send_raw(bus: Bus, outbox_owner: str, envelope: dict[str, Any]) -> None:
    async with Publisher(outbox_owner, bus.rings[outbox_owner], bus.registry, bus.bootstrap) as pub:
        await (await pub.send_wire(to_wire(envelope), envelope["subject"]))


async def assert_rejected(bus: Bus, sender: str, event_id: str, reason: Reason) -> None:
    """Audited with the reason, and the sender got a signed notice saying so."""
    notices = await collect(
        sender, bus.rings[sender], bus.registry, bus.bootstrap, notice_for(event_id), 1, within=30
    )
    assert len(notices) == 1, f"no rejection notice for {event_id}"
    assert notices[0].payload.reason == reason  # type: ignore[attr-defined]
    assert notices[0].envelope.sender == "svc-router"
    records = await audit_of(bus, event_id)
    assert [(r.decision, r.reason) for r in records] == [("rejected", reason.value)]


def signed(bus: Bus, ring: Keyring, family: str, subject: str, to: list[str], **kw: Any) -> dict[str, Any]:
    return compose(
        keyring=ring,
        registry=bus.registry,
        event_type=family,
        subject=subject,
        recipients=to,
        payload=kw.pop("payload", SAMPLES[family]),
        **kw,
    )


async def test_event_reaches_exactly_its_recipients(bus: Bus) -> None:
    """Delivered to both recipients, to no other inbox, and audited as accepted once."""
    subject = f"rectification/{uuid.uuid4()}"
    event_id = await publish(bus, "sc-zigong", "rectification.issued", subject, ["cq-yongchuan", "sc-luzhou"])
    for agency in ("cq-yongchuan", "sc-luzhou"):
        got = await collect(agency, bus.rings[agency], bus.registry, bus.bootstrap, about(subject), 1)
        assert [d.id for d in got] == [event_id]
    for agency in ("sc-yibin", "cq-dazu", "sc-zigong"):
        assert (
            await nothing_more(agency, bus.rings[agency], bus.registry, bus.bootstrap, about(subject)) == []
        )
    records = await audit_of(bus, event_id)
    assert [(r.decision, sorted(r.delivered_to)) for r in records] == [
        ("accepted", ["cq-yongchuan", "sc-luzhou"])
    ]


async def test_sealed_clue_opens_only_for_its_recipient(bus: Bus) -> None:
    """The receiver opens the clue through its Subscriber; another agency cannot open it."""
    subject = f"clue/{uuid.uuid4()}"
    event_id = await publish(bus, "sc-zigong", "clue.transferred", subject, ["cq-yongchuan"])
    got = await collect(
        "cq-yongchuan", bus.rings["cq-yongchuan"], bus.registry, bus.bootstrap, about(subject), 1
    )
    assert got[0].payload.persons[0].name == "李某"  # type: ignore[attr-defined]
    assert (
        await nothing_more("sc-yibin", bus.rings["sc-yibin"], bus.registry, bus.bootstrap, about(subject))
        == []
    )
    # even holding the raw record from the audit log, a non-recipient cannot open it
    record = (await audit_of(bus, event_id))[0]
    assert record.event is not None
    assert "李某" not in json.dumps(record.event, ensure_ascii=False)
    with pytest.raises(ContractError) as info:
        open_sealed(record.event["data"], event_id, "sc-yibin", bus.rings["sc-yibin"].openers())
    assert info.value.reason == Reason.NOT_A_RECIPIENT


async def test_forged_signature_is_rejected_audited_and_answered(bus: Bus) -> None:
    """An event whose signature was made with another key is refused (the demo's attack)."""
    env = attacks.forged_signature(bus.registry, bus.rings, utcnow(), "sc-luzhou", "sc-yibin", ["cq-dazu"])
    await send_raw(bus, "sc-luzhou", env)
    await assert_rejected(bus, "sc-luzhou", env["id"], Reason.BAD_SIGNATURE)


async def test_replayed_event_id_is_rejected_audited_and_answered(bus: Bus) -> None:
    """The same signed event published twice: delivered once, the replay refused as duplicate."""
    env = signed(
        bus,
        bus.rings["sc-neijiang"],
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["cq-jiangjin"],
    )
    await send_raw(bus, "sc-neijiang", env)
    await send_raw(bus, "sc-neijiang", env)
    notices = await collect(
        "sc-neijiang",
        bus.rings["sc-neijiang"],
        bus.registry,
        bus.bootstrap,
        notice_for(env["id"]),
        1,
        within=30,
    )
    assert notices[0].payload.reason == Reason.DUPLICATE  # type: ignore[attr-defined]
    records = await audit_of(bus, env["id"], at_least=2)
    assert [(r.decision, r.reason) for r in records] == [
        ("accepted", None),
        ("rejected", "duplicate"),
    ]
    delivered = await nothing_more(
        "cq-jiangjin", bus.rings["cq-jiangjin"], bus.registry, bus.bootstrap, about(env["subject"])
    )
    assert [d.id for d in delivered] == [env["id"]]


async def test_revoked_key_is_rejected_audited_and_answered(bus: Bus) -> None:
    """An event signed with cq-dazu's revoked key (the stolen laptop) is refused."""
    stolen = bus.rings["cq-dazu-stolen"]
    kid = "cq-dazu#sig-1"
    env = signed(
        bus,
        bus.rings["cq-dazu"],
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["sc-yibin"],
    )
    env = sign_envelope(env, Key.from_private_bytes(b64d(stolen.keys[kid])), kid)
    await send_raw(bus, "cq-dazu", env)
    await assert_rejected(bus, "cq-dazu", env["id"], Reason.KEY_REVOKED)


async def test_unauthorized_type_is_rejected_audited_and_answered(bus: Bus) -> None:
    """An agency posing as the router with a rejection notice is refused (the demo's attack)."""
    env = attacks.posing_as_router(bus.registry, bus.rings, utcnow(), "cq-rongchang", ["sc-zigong"])
    await send_raw(bus, "cq-rongchang", env)
    await assert_rejected(bus, "cq-rongchang", env["id"], Reason.NOT_AUTHORIZED)


async def test_unknown_recipient_is_rejected_audited_and_answered(bus: Bus) -> None:
    """Addressing an agency outside the federation is refused (the demo's attack)."""
    env = attacks.unknown_recipient(bus.registry, bus.rings, utcnow(), "cq-yongchuan", ["sc-luzhou"])
    assert env["recipients"] == [attacks.STRANGER]
    assert attacks.STRANGER not in bus.registry.agency_ids
    await send_raw(bus, "cq-yongchuan", env)
    await assert_rejected(bus, "cq-yongchuan", env["id"], Reason.UNKNOWN_RECIPIENT)


async def test_bad_lifecycle_transition_is_rejected_audited_and_answered(bus: Bus) -> None:
    """A disposition for a clue that was never accepted is refused (the demo's attack); so
    is verification by anyone but the issuer."""
    subject = f"clue/{uuid.uuid4()}"
    await publish(bus, "sc-yibin", "clue.transferred", subject, ["cq-jiangjin"])
    early = attacks.early_disposition(bus.registry, bus.rings, utcnow(), "cq-jiangjin", ["sc-yibin"], subject)
    await send_raw(bus, "cq-jiangjin", early)
    await assert_rejected(bus, "cq-jiangjin", early["id"], Reason.BAD_TRANSITION)

    rect = f"rectification/{uuid.uuid4()}"
    await publish(bus, "sc-luzhou", "rectification.issued", rect, ["cq-rongchang"])
    await publish(bus, "cq-rongchang", "rectification.completion_reported", rect, ["sc-luzhou"])
    self_verify = await publish(bus, "cq-rongchang", "rectification.verified", rect, ["sc-luzhou"])
    await assert_rejected(bus, "cq-rongchang", self_verify, Reason.NOT_AUTHORIZED)


async def test_sender_outbox_mismatch_is_rejected(bus: Bus) -> None:
    """A genuine event of one agency pushed through another agency's outbox is refused."""
    env = signed(
        bus,
        bus.rings["sc-zigong"],
        "rectification.issued",
        f"rectification/{uuid.uuid4()}",
        ["cq-dazu"],
    )
    await send_raw(bus, "sc-luzhou", env)
    records = await audit_of(bus, env["id"])
    assert [(r.decision, r.reason) for r in records] == [("rejected", "not_authorized")]


async def test_unacknowledged_clue_raises_overdue_alert_to_both_parties(bus: Bus) -> None:
    """A clue not acknowledged within the deadline (4 s here) raises one overdue alert each."""
    subject = f"clue/{uuid.uuid4()}"
    await publish(bus, "sc-luzhou", "clue.transferred", subject, ["cq-yongchuan"])
    for agency in ("sc-luzhou", "cq-yongchuan"):
        alerts = await collect(
            agency,
            bus.rings[agency],
            bus.registry,
            bus.bootstrap,
            lambda d: d.envelope.subject == subject and d.family == "deadline.overdue",
            1,
            within=40,
        )
        assert len(alerts) == 1
        assert alerts[0].payload.what == "clue_not_acknowledged"  # type: ignore[attr-defined]
        assert alerts[0].envelope.sender == "svc-router"


async def test_subscriber_sends_signed_receipt_automatically(bus: Bus) -> None:
    """Reading an event through the Subscriber answers it with a receipt to the sender."""
    subject = f"rectification/{uuid.uuid4()}"
    event_id = await publish(bus, "cq-jiangjin", "rectification.issued", subject, ["sc-neijiang"])
    got = await collect(
        "sc-neijiang",
        bus.rings["sc-neijiang"],
        bus.registry,
        bus.bootstrap,
        about(subject),
        1,
        receipts=True,
    )
    assert got
    receipts = await collect(
        "cq-jiangjin",
        bus.rings["cq-jiangjin"],
        bus.registry,
        bus.bootstrap,
        lambda d: d.family == "receipt" and d.envelope.causationid == event_id,
        1,
    )
    assert receipts[0].payload.status == "received"  # type: ignore[attr-defined]
    assert receipts[0].envelope.sender == "sc-neijiang"
