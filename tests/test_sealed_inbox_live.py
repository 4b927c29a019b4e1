"""A hostile sender's sealed clue whose plaintext is no payload, on the real broker with the
real worker: the recipient's inbox (SDK, gateway, `jointbus inbox`, `govern approve`) decides
it, refuses it with a signed receipt, and reads on; the router settles the clue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jointbus.gateway.service import Gateway
from jointbus.schemas.ids import utcnow
from jointbus.schemas.projections import project
from jointbus.schemas.records import AuditRecord
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Subscriber
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC
from tests.conftest import Bus
from tests.harness import collect, eventually, jointbus_cli
from tests.test_router import about, audit_of, publish, send_raw
from tests.test_sealed_plaintext import clue_text, sealed_clue

pytestmark = pytest.mark.broker
ATTACKER, VICTIM = "sc-zigong", "cq-yongchuan"
#: the bus fixture's acknowledgement deadline is 4 s; a clue dated this far ahead (within the
#: 5 min clock skew) leaves the refusal that much slack on a loaded machine
AHEAD = timedelta(seconds=20)


def hostile_clue(bus: Bus, plaintext: bytes = b"not json", **kw: Any) -> dict[str, Any]:
    return sealed_clue(
        plaintext, registry=bus.registry, rings=bus.rings, sender=ATTACKER, to=VICTIM,
        subject=f"clue/{uuid.uuid4()}", **kw,
    )  # fmt: skip


async def honest_event_to_the_victim(bus: Bus) -> tuple[str, str]:
    """An ordinary rectification from another agency to the victim: (its id, subject)."""
    subject = f"rectification/{uuid.uuid4()}"
    return await publish(bus, "sc-neijiang", "rectification.issued", subject, [VICTIM]), subject


def sent_by(event_id: str, family: str) -> Any:
    return lambda d: d.family == family and d.envelope.causationid == event_id


async def test_sealed_plaintext_that_is_not_json_does_not_stop_the_recipients_inbox(bus: Bus) -> None:
    """The hostile clue, then an honest event, to cq-yongchuan: its Subscriber refuses the
    clue (``schema``) and hands over the honest event; the signed refusal reaches the sender,
    the router marks the clue undeliverable, it is not counted open against the victim, and
    no overdue alert blames the victim — while an honest clue sent beside it, left
    unanswered, does raise its alert (the deadline scan ran)."""
    at = utcnow() + AHEAD
    hostile = hostile_clue(bus, at=at)
    control = hostile_clue(bus, clue_text().encode(), at=at)
    await send_raw(bus, ATTACKER, hostile)
    await send_raw(bus, ATTACKER, control)
    honest_id, honest_subject = await honest_event_to_the_victim(bus)

    got = await collect(
        VICTIM, bus.rings[VICTIM], bus.registry, bus.bootstrap, about(honest_subject), 1, receipts=True
    )
    assert [d.id for d in got] == [honest_id]

    (refusal,) = await collect(
        ATTACKER, bus.rings[ATTACKER], bus.registry, bus.bootstrap, sent_by(hostile["id"], "receipt"), 1
    )
    assert refusal.envelope.sender == VICTIM
    assert (refusal.payload.status, refusal.payload.reason) == ("refused", "schema")  # type: ignore[attr-defined]
    assert [r.decision for r in await audit_of(bus, refusal.id)] == ["accepted"]

    # the control clue's alert proves the deadline passed and the scan ran
    await collect(
        VICTIM, bus.rings[VICTIM], bus.registry, bus.bootstrap,
        lambda d: d.family == "deadline.overdue" and d.envelope.subject == control["subject"], 1, within=60,
    )  # fmt: skip
    records = [AuditRecord.model_validate_json(v) async for _, _, v in read_topic(bus.bootstrap, AUDIT_TOPIC)]
    projection = project(records)
    assert projection.items[hostile["subject"]].status == "undeliverable"
    assert projection.items[control["subject"]].status == "transferred"
    alerts = []
    sub = Subscriber(
        VICTIM, bus.rings[VICTIM], bus.registry, bus.bootstrap, group_id=False, receipts=False, until_end=True
    )
    async with sub:
        async for d in sub:
            if d.family == "deadline.overdue" and d.envelope.subject == hostile["subject"]:
                alerts.append(d)
    assert alerts == [], "an overdue alert blames the victim for a clue it refused"


async def test_gateway_inbox_reader_survives_a_sealed_plaintext_that_is_not_json(
    bus: Bus, tmp_path: Path
) -> None:
    """The victim's gateway reads the hostile clue and goes on reading: the honest event
    after it is stored, and the reader is still running (it used to exit at once, and again
    after every restart)."""
    gateway = Gateway(
        Settings(bootstrap=bus.bootstrap, home=bus.home), VICTIM, store_path=tmp_path / "gw.sqlite"
    )
    await gateway.start()
    try:
        await send_raw(bus, ATTACKER, hostile_clue(bus))
        honest_id, _ = await honest_event_to_the_victim(bus)

        async def stored() -> bool | None:
            assert not gateway.failed.is_set(), f"inbox reader stopped: {gateway.failure!r}"
            return True if gateway.store.inbox_item(honest_id) is not None else None

        await eventually(stored, within=60, what=f"the gateway storing {honest_id}")
        await asyncio.sleep(1.5)  # it used to die 1.3 s after each start
        assert gateway.reading
        assert not gateway.failed.is_set()
    finally:
        await gateway.stop()


async def test_inbox_and_govern_approve_name_the_refused_record_and_go_on(bus: Bus) -> None:
    """`jointbus inbox` lists the honest event after the hostile clue and names the clue's
    refusal in one readable line; `govern approve` reads past it to its own readable answer
    (no such proposal). Neither prints a traceback."""
    hostile = hostile_clue(bus)
    await send_raw(bus, ATTACKER, hostile)
    honest_id, honest_subject = await honest_event_to_the_victim(bus)
    await collect(VICTIM, bus.rings[VICTIM], bus.registry, bus.bootstrap, about(honest_subject), 1)

    inbox = await jointbus_cli(bus.home, bus.bootstrap, "inbox", "--agency", VICTIM, "--json")
    assert inbox.returncode == 0, inbox.stderr
    assert "Traceback" not in inbox.stderr
    assert honest_id in inbox.stdout
    assert f"passed over: event {hostile['id']}" in inbox.stderr, inbox.stderr
    assert "refused: schema: sealed plaintext: not strict JSON" in inbox.stderr, inbox.stderr

    missing = str(uuid.uuid4())
    approve = await jointbus_cli(bus.home, bus.bootstrap, "govern", "approve", "--as", VICTIM, missing)
    assert "Traceback" not in approve.stderr + approve.stdout
    assert f"passed over: event {hostile['id']}" in approve.stderr, approve.stderr
    assert f"no proposal {missing} in the inbox of {VICTIM}" in approve.stderr + approve.stdout
