"""Smearing by volume (issue 25, item 5), in memory through the router with a pinned clock:
one member floods another with clue transfers; the router refuses every one past the
policy's limit of open obligations per sender → recipient pair (``too_many_open``), the
recipient is charged with none of those, its other senders are not blocked, the figures
and `status` name the flooder, and a router rebuilt from the audit log (as auditors
re-derive it) reaches the same verdicts and counts."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jointbus.agents.routing import Routed, Router
from jointbus.schemas.compose import compose
from jointbus.schemas.envelope import to_wire
from jointbus.schemas.errors import Reason
from jointbus.schemas.governance import PolicyChanged, next_version
from jointbus.schemas.keys import Keyring, new_federation
from jointbus.schemas.lifecycle import Rules
from jointbus.schemas.projections import Projection, apply, project
from jointbus.schemas.records import AuditRecord
from jointbus.schemas.registry import DEFAULT_OPEN_PER_PAIR, ROUTER, Registry
from jointbus.streams.topics import inbox, outbox
from tests.samples import SAMPLES

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
FLOOD = 2_000
FLOODER, VICTIM = "sc-zigong", "cq-rongchang"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Bus:
    """A router fed by hand, at pinned moments, keeping every audit record it writes."""

    def __init__(self, registry: Registry, rings: dict[str, Keyring]) -> None:
        self.rings = rings
        self.router = Router(registry, rings[ROUTER], Rules())
        self.offsets: dict[str, int] = {}
        self.records: list[AuditRecord] = []
        self.clock = NOW

    def send(self, sender: str, family: str, subject: str, to: list[str], payload: dict[str, Any]) -> Routed:
        self.clock += timedelta(milliseconds=1)
        env = compose(
            keyring=self.rings[sender],
            registry=self.router.registry,
            event_type=family,
            subject=subject,
            recipients=to,
            payload=payload,
            now=self.clock,
        )
        topic = outbox(sender)
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        routed = self.router.route(to_wire(env), topic, 0, offset, ms(self.clock))
        assert routed.record is not None
        self.records.append(routed.record)
        return routed

    def clue(self, sender: str, to: str) -> Routed:
        return self.send(
            sender, "clue.transferred", f"clue/{uuid.uuid4()}", [to], SAMPLES["clue.transferred"]
        )


@pytest.fixture
def bus() -> Bus:
    registry, rings = new_federation(NOW - timedelta(days=1))
    return Bus(registry, rings)


def test_a_member_flooding_clue_transfers_cannot_charge_the_recipient(bus: Bus) -> None:
    """2,000 clue transfers sc-zigong → cq-rongchang: the first 200 (the default limit) are
    delivered, the other 1,800 are refused ``too_many_open`` with a notice to sc-zigong only
    and nothing for cq-rongchang; another agency's clue still reaches cq-rongchang; after the
    deadline at most 200 of sc-zigong's clues are alerted, and once cq-rongchang returns them
    none is; the ledger keeps one counter per pair."""
    flood = [bus.clue(FLOODER, VICTIM) for _ in range(FLOOD)]
    accepted = [r for r in flood if r.record and r.record.decision == "accepted"]
    refused = [r for r in flood if r.record and r.record.decision == "rejected"]
    assert len(accepted) == DEFAULT_OPEN_PER_PAIR
    assert len(refused) == FLOOD - DEFAULT_OPEN_PER_PAIR
    assert {r.record.reason for r in refused if r.record} == {Reason.TOO_MANY_OPEN}
    for routed in refused:  # answered to the flooder, delivered to nobody else
        assert {o.topic for o in routed.outputs} == {inbox(FLOODER), "jointbus.audit"}
        assert routed.record is not None
        assert routed.record.delivered_to == []
    honest = bus.clue("sc-luzhou", VICTIM)
    assert honest.record is not None
    assert honest.record.decision == "accepted"
    other = bus.clue(FLOODER, "cq-dazu")  # the limit is per pair, not a ban
    assert other.record is not None
    assert other.record.decision == "accepted"
    assert bus.router.ledger.open == {
        (FLOODER, VICTIM): DEFAULT_OPEN_PER_PAIR,
        ("sc-luzhou", VICTIM): 1,
        (FLOODER, "cq-dazu"): 1,
    }

    figures = {
        row["agency"]: row for row in project(bus.records, agencies=bus.router.registry.agencies).rows()
    }
    assert figures[VICTIM]["clues_open"] == DEFAULT_OPEN_PER_PAIR + 1
    assert figures[VICTIM]["rejected"] == 0
    assert figures[FLOODER]["rejected"] == FLOOD - DEFAULT_OPEN_PER_PAIR

    late = bus.clock + timedelta(days=3, minutes=1)
    alerts = bus.router.overdue(late)
    parties = [tuple(a.record.delivered_to) for a in alerts if a.record is not None]
    assert len(parties) == DEFAULT_OPEN_PER_PAIR + 2  # never the 1,800 refused
    assert parties.count(tuple(sorted((FLOODER, VICTIM)))) == DEFAULT_OPEN_PER_PAIR

    # the victim's way out: it returns the flood, each return frees a slot, no more alerts
    fresh = Bus(*new_federation(NOW - timedelta(days=1)))
    opened = [fresh.clue(FLOODER, VICTIM) for _ in range(3)]
    for routed in opened:
        env = json.loads(routed.outputs[0].value)
        reply = fresh.send(VICTIM, "clue.returned", env["subject"], [FLOODER], SAMPLES["clue.returned"])
        assert reply.record is not None
        assert reply.record.decision == "accepted"
    assert fresh.router.ledger.open == {}
    assert fresh.router.overdue(fresh.clock + timedelta(days=4)) == []


def test_a_rebuilt_router_re_derives_the_limit_from_the_log(bus: Bus) -> None:
    """Auditors and a restarted router fold the audit log: same verdicts, same counts."""
    for _ in range(DEFAULT_OPEN_PER_PAIR + 30):
        bus.clue(FLOODER, VICTIM)
    rebuilt = Router(bus.router.registry, bus.rings[ROUTER], Rules())
    for record in bus.records:
        rebuilt.fold(record)
    assert rebuilt.counts["history_mismatch"] == 0
    assert rebuilt.ledger.open == bus.router.ledger.open == {(FLOODER, VICTIM): DEFAULT_OPEN_PER_PAIR}


def test_the_limit_is_the_registry_policy() -> None:
    """A registry whose policy sets ``open_per_pair`` 3 refuses the fourth open clue."""
    registry, rings = new_federation(NOW - timedelta(days=1))
    policy = next_version(registry, [PolicyChanged(open_per_pair=3)], NOW - timedelta(hours=1))
    bus = Bus(policy, rings)
    verdicts = [bus.clue(FLOODER, VICTIM).record for _ in range(5)]
    assert [r.reason for r in verdicts if r] == [None, None, None, Reason.TOO_MANY_OPEN, Reason.TOO_MANY_OPEN]


def test_flood_rejections_are_attributed_to_the_flooder_in_status(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` (and the projection the console reads) shows who flooded whom: the pair
    sc-zigong → cq-rongchang with its open items and its refusals, first; the victim's row
    holds no rejection."""
    from jointbus.views import print_projection

    for _ in range(DEFAULT_OPEN_PER_PAIR + 25):
        bus.clue(FLOODER, VICTIM)
    bus.clue("sc-luzhou", VICTIM)
    p = Projection(bus.router.registry.agencies)
    for record in bus.records:
        apply(p, record)
    assert p.pairs() == [
        {"sender": FLOODER, "recipient": VICTIM, "open": DEFAULT_OPEN_PER_PAIR, "too_many_open": 25},
        {"sender": "sc-luzhou", "recipient": VICTIM, "open": 1, "too_many_open": 0},
    ]
    capsys.readouterr()  # the router's log lines
    print_projection(p, as_json=True, title="jointbus status")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pairs = [line for line in lines if line["kind"] == "pair"]
    assert pairs[0] == {
        "kind": "pair",
        "sender": FLOODER,
        "recipient": VICTIM,
        "open": DEFAULT_OPEN_PER_PAIR,
        "too_many_open": 25,
    }
    rows = {line["agency"]: line for line in lines if line["kind"] == "agency"}
    assert rows[VICTIM]["rejected"] == 0
    assert rows[FLOODER]["rejected"] == 25
    print_projection(p, as_json=False, title="jointbus status")
    table = capsys.readouterr().out
    assert "who holds whom busy" in table
    line = next(text for text in table.splitlines() if FLOODER in text and VICTIM in text)
    assert [cell.strip() for cell in line.split("│")[1:5]] == [FLOODER, VICTIM, "200", "25"]


async def test_the_console_shows_who_flooded_whom(bus: Bus) -> None:
    """The console's overview names the flooder beside the pair it flooded, with its
    refusals, and charges the victim nothing."""
    import re

    import httpx

    from jointbus.console.app import allowed_hosts, create_app
    from jointbus.console.state import LogState
    from jointbus.streams.settings import Settings

    for _ in range(DEFAULT_OPEN_PER_PAIR + 3):
        bus.clue(FLOODER, VICTIM)
    state = LogState(bus.router.registry)
    for offset, record in enumerate(bus.records):
        state.add(offset, record.to_bytes())
    app = create_app(
        Settings(),
        bus.router.registry,
        state,
        hosts=allowed_hosts("127.0.0.1", 8080, ["console"]),
        clock=lambda: NOW,
        follow_log=False,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        page = (await client.get("/?lang=en")).text
        figures = (await client.get("/api/figures")).json()
    table = page[page.index('id="pairs"') :]
    cells = re.findall(r"<td>(.*?)</td>", table[: table.index("</table>")], re.S)
    assert [re.sub(r"<[^>]+>", "", c).strip() for c in cells][2:4] == [str(DEFAULT_OPEN_PER_PAIR), "3"]
    assert figures["pairs"][0] == {
        "sender": FLOODER,
        "recipient": VICTIM,
        "open": DEFAULT_OPEN_PER_PAIR,
        "too_many_open": 3,
    }
    assert "never the recipient" in page
