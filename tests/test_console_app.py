"""The console's pages over a log folded in memory (no broker): figures and their events,
periods, deadlines with a pinned clock, pages without the charting library, and the
command's one-line refusals."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from jointbus.cli import cli
from jointbus.console import app as console_app
from jointbus.console.app import ALL, allowed_hosts, create_app
from jointbus.console.state import LogState
from jointbus.processes import JointbusProcess
from jointbus.schemas.ids import format_time
from jointbus.schemas.projections import COLUMNS, Projection, apply
from jointbus.schemas.records import AuditRecord
from jointbus.streams.broker import free_port
from jointbus.streams.reader import read_topic
from jointbus.streams.settings import Settings
from jointbus.streams.topics import AUDIT_TOPIC, outbox
from tests.conftest import Bus as LiveBus
from tests.harness import eventually
from tests.test_projections import NOW, REGISTRY, Bus

CLUE = [
    ("sc-zigong", "clue.transferred", ["cq-yongchuan"], None),
    ("cq-yongchuan", "clue.acknowledged", ["sc-zigong"], None),
]
RECTIFICATION = [("sc-yibin", "rectification.issued", ["cq-dazu"], None)]


def the_log() -> list[AuditRecord]:
    """Clues, rectifications and a rejection, received one day apart (day 0 ... day 5)."""
    bus = Bus()
    for steps in (CLUE, RECTIFICATION, CLUE, RECTIFICATION):
        ids: list[str | None] = []
        subject = f"{steps[0][1].split('.')[0]}/{uuid.uuid4()}"
        for step in steps:
            ids.append(bus.send(subject, step, ids).event_id)
    bus.send(f"meeting/{uuid.uuid4()}", ("sc-zigong", "meeting.held", ["sc-luzhou"], None), [])  # rejected
    return [
        r.model_copy(update={"received_at": format_time(NOW + timedelta(days=i))})
        for i, r in enumerate(bus.records)
    ]


@pytest.fixture
def log() -> LogState:
    state = LogState(REGISTRY)
    for offset, record in enumerate(the_log()):
        state.add(offset, record.to_bytes())
    return state


@pytest.fixture
async def http(log: LogState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(),
        REGISTRY,
        log,
        hosts=allowed_hosts("127.0.0.1", 8080, ["console"]),
        clock=lambda: NOW + timedelta(days=10),
        follow_log=False,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        yield client


def figures_in(html: str) -> dict[tuple[str, str], int]:
    """The overview's linked numbers: (agency, column) -> value."""
    found = re.findall(r'data-agency="([^"]*)" data-column="([^"]*)" href="[^"]*">(\d+)<', html)
    return {(agency, column): int(value) for agency, column, value in found}


async def test_every_figure_links_to_the_events_that_make_it_up(http: httpx.AsyncClient) -> None:
    """Each number of the overview opens a page listing exactly that many events (or, for
    open items, that many items)."""
    shown = figures_in((await http.get("/")).text)
    assert len(shown) == (len(REGISTRY.agencies) + 1) * len(COLUMNS)
    assert shown[(ALL, "clues_transferred")] == 2
    assert shown[("sc-zigong", "rejected")] == 1
    for (agency, column), value in shown.items():
        page = (await http.get(f"/figure/{agency}/{column}")).text
        listed = page.count('<tr class="event"') + page.count('<li><a href="/aggregate/')
        assert listed == value, (agency, column)


async def test_a_period_is_folded_like_status_since_until(log: LogState, http: httpx.AsyncClient) -> None:
    """Figures of a period are the records received in it folded afresh (as `status --since
    --until`): day 1 to day 3 holds one acknowledgement, one rectification, one transfer."""
    since, until = format_time(NOW + timedelta(days=1)), format_time(NOW + timedelta(days=3))
    answer = (await http.get("/api/figures", params={"since": since, "until": until})).json()
    expected = Projection(REGISTRY.agencies, since=since, until=until)
    for record in the_log()[1:4]:
        apply(expected, record)
    assert answer["rows"] == expected.rows()
    assert answer["totals"] == expected.collaboration()
    assert answer["records"] == 3
    assert (await http.get("/", params={"since": "yesterday"})).status_code == 400


async def test_deadlines_count_open_items_by_age_at_the_console_clock(http: httpx.AsyncClient) -> None:
    """With the clock pinned at day 10, the clue opened on day 0 is 10 days old and the one
    opened on day 3 is 7: both in the 7–30 bucket of their holder, cq-yongchuan."""
    page = (await http.get("/deadlines?lang=en")).text
    row = re.search(r'<tr data-agency="cq-yongchuan">(.*?)</tr>', page, re.S)
    assert row is not None
    assert re.findall(r"<td[^>]*>(\d+)</td>", row.group(1)) == ["0", "0", "2", "0", "0"]
    assert "10 days" in page
    assert "Yongchuan" in page


async def test_pages_without_the_charting_library_say_so(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """When ECharts was not fetched the pages still serve their figures and say why there is
    no chart, instead of failing or loading a script from elsewhere."""
    monkeypatch.setattr(console_app, "ECHARTS", tmp_path / "missing.js")
    for path in ("/", "/flow"):
        page = (await http.get(path)).text
        assert 'id="no-charts"' in page
        assert "make charts" in page
        assert "echarts.min.js" not in page
    assert figures_in((await http.get("/")).text)[(ALL, "rect_issued")] == 2


async def test_unknown_things_are_refused_with_their_reason(http: httpx.AsyncClient) -> None:
    """An unknown event, subject or figure is a 404 naming the reason code; nothing writes."""
    for path in ("/event/nope", "/aggregate/clue/nope", "/figure/sc-nowhere/rejected", "/figure/_all/nope"):
        answer = await http.get(path)
        assert answer.status_code == 404, path
        assert "not_found" in answer.text, path
    assert (await http.get("/event/nope/proof")).json()["reason"] == "not_found"
    assert (await http.put("/log/verify")).status_code == 405


async def test_another_site_cannot_start_a_verification_from_an_auditors_browser(
    http: httpx.AsyncClient,
) -> None:
    """Cross-site request forgery: a form of another site (its Origin, or the browser's
    Sec-Fetch-Site) cannot make the console start a verify job; its own page can."""
    forged = await http.post("/log/verify", headers={"Origin": "http://evil.example"})
    fetched = await http.post("/log/verify", headers={"Sec-Fetch-Site": "cross-site"})
    assert (forged.status_code, fetched.status_code) == (403, 403)
    assert (await http.get("/api/verify")).json() == {"state": "idle"}
    own = await http.post(
        "/log/verify", headers={"Origin": "http://console", "Sec-Fetch-Site": "same-origin"}
    )
    assert own.status_code == 303
    assert "default-src 'self'" in (await http.get("/")).headers["content-security-policy"]


def test_the_command_refuses_a_bad_or_taken_address_in_one_line() -> None:
    """`--listen` must be host:port, and free: each refusal is one line and exit status 2."""
    runner = CliRunner()
    bad = runner.invoke(cli, ["console", "--listen", "nowhere"])
    assert bad.exit_code == 2
    assert bad.output.strip().endswith("[bad_address]")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = runner.invoke(cli, ["console", "--listen", f"127.0.0.1:{port}"])
    assert busy.exit_code == 2
    assert busy.output.strip().endswith("[address_in_use]")
    assert len(busy.output.strip().splitlines()) == 1


async def test_dns_rebinding_host_is_refused_on_every_route(log: LogState, http: httpx.AsyncClient) -> None:
    """DNS rebinding: a page of ``rebind.evil.example`` whose name now resolves to the
    console's address sends its own name as ``Host`` (and ``Origin``). Every route, the
    verify button and a proof download included, answers 421 and starts nothing; the
    console's own names (the listen address, localhost, [::1], a configured name) answer."""
    event_id = next(e.event_id for e in log.entries if e.event_id)
    routes = [
        ("GET", "/"),
        ("GET", "/flow"),
        ("GET", "/deadlines"),
        ("GET", "/log"),
        ("GET", "/healthz"),
        ("GET", "/api/figures"),
        ("GET", "/api/stream"),
        ("GET", "/api/verify"),
        ("GET", f"/event/{event_id}"),
        ("GET", f"/event/{event_id}/proof"),
        ("GET", f"/figure/{ALL}/rejected"),
        ("GET", "/aggregate/clue/x"),
        ("GET", "/static/console.css"),
        ("GET", "/no/such/route"),
        ("POST", "/log/verify"),
    ]
    for host in ("rebind.evil.example", "rebind.evil.example:8080", "127.0.0.1:8081", "127.0.0.1", ""):
        evil = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
        for method, path in routes:
            answer = await http.request(method, path, headers=evil)
            assert answer.status_code == 421, (host, method, path, answer.status_code)
            assert event_id not in answer.text
    assert (await http.get("/api/verify")).json() == {"state": "idle"}  # nothing started
    for host in ("127.0.0.1:8080", "localhost:8080", "LOCALHOST:8080", "[::1]:8080", "console"):
        assert (await http.get("/healthz", headers={"Host": host})).status_code == 200, host
    assert allowed_hosts("0.0.0.0", 9000, ["bus.example", "proxy.example:443"]) >= {
        "0.0.0.0:9000",
        "bus.example",
        "bus.example:9000",
        "proxy.example:443",
    }
    assert "proxy.example" not in allowed_hosts("0.0.0.0", 9000, ["proxy.example:443"])


#: every field of an event the console reads
FIELDS = ("recipients", "type", "subject", "causationid", "correlationid", "datacontenttype", "data")


def hostile_records() -> list[bytes]:
    """Rejected, accepted and emitted records whose ``event`` holds JSON of every type in
    every field the console reads (a rejected event is kept as it was sent)."""
    odd: list[object] = [5, -1, 2**53 - 1, True, None, "x", [], [5], [[]], {}, {"a": [1]}, "🙂" * 3]
    records = []
    for n, value in enumerate(odd):
        for decision in ("rejected", "accepted", "emitted"):
            event = {field: value for field in FIELDS}
            overdue = {**event, "type": "org.jointbus.deadline.overdue.v1"}
            for event_ in ({"recipients": value}, event, overdue):
                records.append(
                    AuditRecord(
                        position=f"jointbus.outbox.sc-zigong:2:{len(records)}",
                        received_at=format_time(NOW + timedelta(days=n % 5)),
                        decision=decision,  # type: ignore[arg-type]
                        sender="sc-zigong",
                        event_id=f"odd-{len(records)}",
                        event=event_,
                        notice={"type": value},
                    ).to_bytes()
                )
    return records


async def test_a_rejected_record_with_any_json_in_its_fields_does_not_stop_the_console(
    log: LogState, http: httpx.AsyncClient
) -> None:
    """`{"recipients": 5}`, kept forever in the audit log, stopped the console at start
    (TypeError). Now every record becomes an entry, its ill-typed fields blank, and every
    page serves (the figures of the honest records unchanged)."""
    before = figures_in((await http.get("/")).text)
    first = len(log.entries)
    seventeen = AuditRecord(
        position="jointbus.outbox.sc-zigong:1:99",
        received_at=format_time(NOW),
        decision="rejected",
        reason="schema",
        sender="sc-zigong",
        event={"recipients": 5},
    )
    log.add(log.next_offset, seventeen.to_bytes())
    assert log.entries[first].recipients == ()
    assert log.entries[first].decision == "rejected"
    hostile = hostile_records()
    for value in hostile:
        log.add(log.next_offset, value)
    assert len(log.entries) == first + 1 + len(hostile)
    for entry in log.entries[first:]:
        assert all(isinstance(r, str) for r in entry.recipients)
        assert isinstance(entry.type, str)
        assert isinstance(entry.subject, str)
        assert entry.causation is None or isinstance(entry.causation, str)
        assert entry.notice is None or isinstance(entry.notice, str)
    floated = AuditRecord(
        position="jointbus.outbox.sc-zigong:3:0",
        received_at=format_time(NOW),
        decision="rejected",
        sender="sc-zigong",
        event={"type": 1.5},
    )
    log.add(log.next_offset, floated.to_bytes())  # no router writes a float: not a record
    assert len(log.entries) == first + 1 + len(hostile)
    odd = next(e for e in log.entries[first:] if e.subject == "" and e.event_id)
    pages = ("/", "/flow", "/deadlines", f"/figure/{ALL}/rejected", f"/event/{odd.event_id}", "/api/figures")
    for path in pages:
        assert (await http.get(path)).status_code == 200, path
    after = figures_in((await http.get("/")).text)
    assert after[(ALL, "rejected")] == before[(ALL, "rejected")] + 1 + len(hostile) // 3
    assert after[(ALL, "clues_transferred")] == before[(ALL, "clues_transferred")]


class Console(JointbusProcess):
    """`jointbus console --listen 127.0.0.1:<port>` as a child process."""

    ready_mark = "console at http://"

    def __init__(self, home: Path, bootstrap: str, port: int) -> None:
        super().__init__(home, bootstrap)
        self.args = ("console", "--listen", f"127.0.0.1:{port}")


@pytest.mark.broker
async def test_a_seventeen_byte_record_in_an_outbox_does_not_stop_the_console_on_the_broker(
    bus: LiveBus,
) -> None:
    """sc-zigong writes the 17 bytes `{"recipients": 5}` to its own outbox: the router
    rejects them (schema) and keeps them, as sent, in the audit log forever. `jointbus
    console` then starts (it exited 1 with a TypeError) and answers 200 on `/`; a rebound
    Host is still refused."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bus.bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(outbox("sc-zigong"), b'{"recipients": 5}', key=b"k")
    finally:
        await producer.stop()
    position = f"{outbox('sc-zigong')}:{sent.partition}:{sent.offset}"

    async def rejected() -> AuditRecord | None:
        async for _, _, value in read_topic(bus.bootstrap, AUDIT_TOPIC):
            record = AuditRecord.model_validate_json(value)
            if record.position == position:
                return record
        return None

    record = await eventually(rejected, within=60, what=f"the decision on {position}")
    assert record.decision == "rejected"
    assert record.event == {"recipients": 5}
    port = free_port()
    console = Console(bus.home, bus.bootstrap, port).start(timeout=90)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/healthz")).json()["records"] >= 1
            rebound = await client.get("/", headers={"Host": "rebind.evil.example"})
            assert rebound.status_code == 421
    finally:
        console.stop()
