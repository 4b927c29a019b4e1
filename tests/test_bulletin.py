"""The coordination bulletin (协作通报), the kind added as one module
(``schemas/families/bulletin.py``): its rules on their own, its figure, and a bulletin
through the real broker and router."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from typing import Any

import pytest

from jointbus.schemas.catalog import CURRENT, rights_of
from jointbus.schemas.families.bulletin import BulletinPosted, BulletinState
from jointbus.schemas.families.notice import RejectionNotice
from jointbus.schemas.lifecycle import Aggregate
from jointbus.schemas.projections import Projection, apply
from jointbus.schemas.records import AuditRecord
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Delivery, Publisher
from jointbus.streams.topics import AUDIT_TOPIC
from tests.conftest import Bus
from tests.harness import collect, jointbus_cli
from tests.rules import REGISTRY, decide
from tests.samples import SAMPLES

POST = ("sc-luzhou", "bulletin.posted", ["sc-zigong", "cq-dazu"])
WITHDRAW = ("sc-luzhou", "bulletin.withdrawn", ["sc-zigong", "cq-dazu"])


def run(steps: list[tuple[str, str, list[str]]]) -> tuple[list[str | None], Aggregate | None]:
    """Apply ``steps`` to one new bulletin; the reason of each (None = accepted)."""
    subject, aggregate, reasons = f"bulletin/{uuid.uuid4()}", None, []
    for sender, family, to in steps:
        after, decision = decide(aggregate, sender, family, to, subject)
        aggregate = after or aggregate
        reasons.append(decision.reason)
    return reasons, aggregate


@pytest.mark.parametrize(
    ("steps", "reasons"),
    [
        ([POST], [None]),
        ([POST, WITHDRAW], [None, None]),
        ([POST, POST], [None, "bad_transition"]),  # a subject is posted once
        ([WITHDRAW], ["bad_transition"]),  # nothing to withdraw
        ([POST, ("sc-zigong", "bulletin.withdrawn", ["sc-luzhou", "cq-dazu"])], [None, "not_authorized"]),
        (
            [POST, ("sc-luzhou", "bulletin.withdrawn", ["sc-zigong"])],
            [None, "not_authorized"],
        ),  # dazu not told
        ([POST, WITHDRAW, WITHDRAW], [None, None, "bad_transition"]),
    ],
)
def test_bulletin_steps(steps: list[tuple[str, str, list[str]]], reasons: list[str | None]) -> None:
    """Posted once by its author; withdrawn once, by the author only, reaching its audience."""
    assert run(steps)[0] == reasons


def test_bulletin_state_and_rights() -> None:
    """The state names author and audience; new registries let agencies post bulletins,
    and recipients answer them with receipts."""
    _, aggregate = run([POST, WITHDRAW])
    assert aggregate is not None
    assert aggregate.state == BulletinState(
        status="withdrawn", author="sc-luzhou", audience=("sc-zigong", "cq-dazu")
    )
    assert "bulletin.*" in rights_of("agency")
    assert REGISTRY.member("sc-luzhou").may_publish("bulletin.posted")
    assert CURRENT["bulletin.posted"].answered


@pytest.mark.broker
async def test_bulletin_through_the_bus(bus: Bus) -> None:
    """A bulletin reaches exactly its audience; a member who is not its author cannot
    withdraw it (a signed rejection says why); the author's withdrawal arrives; the figure
    counts the author's bulletin once."""
    subject = f"bulletin/{uuid.uuid4()}"
    to = ["sc-zigong", "cq-dazu"]

    async def send(agency: str, family: str, recipients: list[str]) -> str:
        async with Publisher(agency, bus.rings[agency], bus.registry, bus.bootstrap) as pub:
            return await pub.publish(family, subject, recipients, SAMPLES[family])

    posted = await send("sc-luzhou", "bulletin.posted", to)

    def is_(event_id: str) -> Any:
        return lambda d: d.envelope.id == event_id

    (arrived,) = await collect("cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.bootstrap, is_(posted), 1)
    assert isinstance(arrived.payload, BulletinPosted)
    assert arrived.payload.title == SAMPLES["bulletin.posted"]["title"]

    forged = await send("sc-zigong", "bulletin.withdrawn", ["sc-luzhou", "cq-dazu"])

    def rejection_of(d: Delivery) -> bool:
        return isinstance(d.payload, RejectionNotice) and d.payload.rejected_event_id == forged

    (notice,) = await collect(
        "sc-zigong", bus.rings["sc-zigong"], bus.registry, bus.bootstrap, rejection_of, 1
    )
    assert isinstance(notice.payload, RejectionNotice)
    assert notice.payload.reason == "not_authorized"

    withdrawn = await send("sc-luzhou", "bulletin.withdrawn", to)
    await collect("cq-dazu", bus.rings["cq-dazu"], bus.registry, bus.bootstrap, is_(withdrawn), 1)

    projection = Projection(bus.registry.agencies)
    async for _, _, value in read_topic(bus.bootstrap, AUDIT_TOPIC):
        record = AuditRecord.model_validate_json(value)
        if record.event and record.event.get("subject") == subject:
            apply(projection, record)
    rows = {row["agency"]: row for row in projection.rows()}
    assert rows["sc-luzhou"]["bulletins_posted"] == 1
    assert rows["sc-zigong"]["rejected"] == 1  # the withdrawal it had no right to send


@pytest.mark.broker
async def test_agency_posts_and_withdraws_a_bulletin_with_the_cli(bus: Bus) -> None:
    """The README's commands: `publish` prints the subject it chose, the withdrawal names
    it, and both reach the audience; a family only the router sends is refused with the
    list of those an agency may send."""

    async def publish(family: str, to: str, data: object, *more: str) -> subprocess.CompletedProcess[str]:
        text = json.dumps(data, ensure_ascii=False)
        args = ["publish", "--as", "sc-luzhou", "--type", family, "--to", to, "--data", text, *more]
        return await jointbus_cli(bus.home, bus.bootstrap, *args)

    posted = await publish("bulletin.posted", "sc-zigong,cq-dazu", SAMPLES["bulletin.posted"])
    assert posted.returncode == 0, posted.stderr
    found = re.search(r"published (\S+) on (bulletin/\S+) to jointbus\.outbox\.sc-luzhou", posted.stdout)
    assert found, posted.stdout
    event_id, subject = found.groups()
    withdrawn = await publish(
        "bulletin.withdrawn", "sc-zigong,cq-dazu", SAMPLES["bulletin.withdrawn"], "--subject", subject
    )
    assert withdrawn.returncode == 0, withdrawn.stderr
    arrived = await collect(
        "cq-dazu",
        bus.rings["cq-dazu"],
        bus.registry,
        bus.bootstrap,
        lambda d: d.envelope.subject == subject,
        2,
    )
    assert [d.family for d in arrived] == ["bulletin.posted", "bulletin.withdrawn"]
    assert arrived[0].envelope.id == event_id

    refused = await publish("rejection", "sc-zigong", {})
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert "bulletin.posted" in refused.stderr + refused.stdout
    assert "deadline.overdue" not in refused.stderr + refused.stdout
