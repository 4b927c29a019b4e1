"""Everyday commands as a person or a script uses them: ``publish`` names every payload
problem at once, ``inbox --json`` is one JSON object per line, and ``--port`` reaches the
broker without any environment variable."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from jointbus.schemas.records import AuditRecord
from jointbus.streams.reader import read_topic
from jointbus.streams.sdk import Publisher
from jointbus.streams.topics import AUDIT_TOPIC
from tests.conftest import Bus
from tests.harness import collect, eventually, jointbus_cli
from tests.samples import SAMPLES


def test_publish_names_every_payload_problem_at_once(tmp_path: Path) -> None:
    """A payload missing three fields and with one wrong value: one readable line names all
    four and lists the type's fields, before anything is signed or sent (no broker here)."""
    command = ["publish", "--as", "sc-yibin", "--type", "jointcheck.invited", "--to", "sc-zigong"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jointbus",
            *command,
            "--data",
            '{"scope": "工程质量", "start_date": "not a date"}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "JOINTBUS_HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    message = done.stderr + done.stdout
    assert "Traceback" not in message
    for problem in (
        "project: Field required",
        "start_date: Input should be a valid date",
        "end_date: Field required",
    ):
        assert problem in message, message
    assert "respond_by" in message
    assert "staff_requested" in message


@pytest.mark.broker
async def test_inbox_json_is_one_object_per_line_and_port_is_a_flag(bus: Bus) -> None:
    """An issued rectification reaches cq-jiangjin; `jointbus --port P inbox --json` (no
    JOINTBUS_BOOTSTRAP) prints it as one line a line-by-line reader parses, with its id,
    family, sender, subject and payload."""
    subject = f"rectification/{uuid.uuid4()}"
    async with Publisher("sc-yibin", bus.rings["sc-yibin"], bus.registry, bus.bootstrap) as pub:
        event_id = await pub.publish(
            "rectification.issued", subject, ["cq-jiangjin"], SAMPLES["rectification.issued"]
        )
    ring = bus.rings["cq-jiangjin"]
    await collect("cq-jiangjin", ring, bus.registry, bus.bootstrap, lambda d: d.envelope.id == event_id, 1)

    port = bus.bootstrap.rsplit(":", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOINTBUS_")}
    env["JOINTBUS_HOME"] = str(bus.home)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "jointbus", "--port", port, "inbox", "--agency", "cq-jiangjin", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is a whole JSON object
    (mine,) = [e for e in events if e["id"] == event_id]
    assert (mine["family"], mine["from"], mine["subject"]) == ("rectification.issued", "sc-yibin", subject)
    assert mine["payload"]["problem"] == SAMPLES["rectification.issued"]["problem"]


async def test_publish_many_events_from_one_file_reports_bad_lines(bus: Bus, tmp_path: Path) -> None:
    """1,000 events from one JSON-lines file in one command: the line missing a field and
    the line that is not JSON are reported by number with their reason, the 998 others are
    published, and the router decides every one of them."""
    marker = f"bulk-{uuid.uuid4()}"
    lines = []
    for n in range(1, 1001):
        data = {**SAMPLES["rectification.issued"], "problem": f"{marker} #{n}"}
        if n == 500:
            del data["responsible_unit"]
        lines.append(
            json.dumps(
                {"type": "rectification.issued", "to": ["cq-jiangjin"], "data": data}, ensure_ascii=False
            )
        )
    lines[699] = "{not json"
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = await jointbus_cli(bus.home, bus.bootstrap, "publish", "--as", "sc-yibin", "--file", str(events))
    assert done.returncode == 2, done.stdout + done.stderr  # partial: said in one line
    assert "998 events published" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.count("│") >= 3}
    assert "responsible_unit" in rows.get("500", "")
    assert "not JSON" in rows.get("700", "")

    async def all_decided() -> int | None:
        count = 0
        async for _, _, value in read_topic(bus.bootstrap, AUDIT_TOPIC):
            record = AuditRecord.model_validate_json(value)
            problem = ((record.event or {}).get("data") or {}).get("problem", "")
            if isinstance(problem, str) and problem.startswith(marker) and record.decision == "accepted":
                count += 1
        return count if count == 998 else None

    assert await eventually(all_decided, within=90, what="998 decisions on the bulk events") == 998


async def test_publisher_learns_the_routers_decision(bus: Bus) -> None:
    """`publish_routed` returns `accepted` with the agencies the event went to, and for a
    bad transition the rejection's reason code, each within a bound."""
    async with Publisher("sc-yibin", bus.rings["sc-yibin"], bus.registry, bus.bootstrap) as pub:
        subject = f"rectification/{uuid.uuid4()}"
        good = await pub.publish_routed(
            "rectification.issued", subject, ["cq-jiangjin"], SAMPLES["rectification.issued"], within=30
        )
        assert (good.accepted, good.delivered_to) == (True, ("cq-jiangjin",))
        bad = await pub.publish_routed(
            "rectification.verified",
            f"rectification/{uuid.uuid4()}",
            ["cq-jiangjin"],
            SAMPLES["rectification.verified"],
            within=30,
        )  # nothing issued there: nothing to verify
    assert (bad.accepted, bad.reason) == (False, "bad_transition")
    assert "not an issued rectification" in bad.detail


async def test_publish_wait_routed_says_the_decision(bus: Bus) -> None:
    """`publish --wait routed` prints the router's verdict: delivered to whom, or the
    rejection's reason (exit 1), in one readable line."""
    data = json.dumps(SAMPLES["rectification.verified"], ensure_ascii=False)
    args = ["publish", "--as", "sc-yibin", "--type", "rectification.verified", "--to", "cq-jiangjin"]
    refused = await jointbus_cli(bus.home, bus.bootstrap, *args, "--data", data, "--wait", "routed")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "rejected by the router: bad_transition" in refused.stderr
    assert "Traceback" not in refused.stderr
    data = json.dumps(SAMPLES["rectification.issued"], ensure_ascii=False)
    args = ["publish", "--as", "sc-yibin", "--type", "rectification.issued", "--to", "cq-jiangjin"]
    accepted = await jointbus_cli(bus.home, bus.bootstrap, *args, "--data", data, "--wait", "routed")
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted by the router, delivered to cq-jiangjin" in accepted.stdout


def test_catalog_lists_what_an_agency_publishes_and_each_family_fields(tmp_path: Path) -> None:
    """`jointbus catalog` offers only the families agencies publish (not the router's);
    `catalog FAMILY` lists every field with its type and whether it is required."""
    env = {**os.environ, "JOINTBUS_HOME": str(tmp_path)}
    listed = subprocess.run(
        [sys.executable, "-m", "jointbus", "catalog"], capture_output=True, text=True, timeout=60, env=env
    )
    assert listed.returncode == 0, listed.stderr
    assert "rectification.issued" in listed.stdout
    assert "deadline.overdue" not in listed.stdout
    assert "acceptance" not in listed.stdout
    fields = subprocess.run(
        [sys.executable, "-m", "jointbus", "catalog", "jointcheck.invited"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert fields.returncode == 0, fields.stderr
    rows = {line.split("│")[1].strip(): line for line in fields.stdout.splitlines() if line.count("│") >= 4}
    assert "string (date)" in rows["start_date"]
    assert "yes" in rows["respond_by"]
    assert "Project" in rows["project"]


async def test_a_reply_continues_the_aggregate_and_the_conversation(bus: Bus) -> None:
    """`Publisher.reply` answers a received event on its subject, caused by it, in its
    conversation, to its sender: the receiver acknowledges a transferred clue in one call."""
    async with Publisher("sc-luzhou", bus.rings["sc-luzhou"], bus.registry, bus.bootstrap) as pub:
        sent = await pub.publish_routed(
            "clue.transferred", f"clue/{uuid.uuid4()}", ["cq-rongchang"], SAMPLES["clue.transferred"]
        )
    assert sent.accepted
    ring = bus.rings["cq-rongchang"]
    (clue,) = await collect(
        "cq-rongchang", ring, bus.registry, bus.bootstrap, lambda d: d.id == sent.event_id, 1
    )
    async with Publisher("cq-rongchang", ring, bus.registry, bus.bootstrap) as pub:
        ack_id = await pub.reply(clue.envelope, "clue.acknowledged", SAMPLES["clue.acknowledged"])
    (ack,) = await collect(
        "sc-luzhou", bus.rings["sc-luzhou"], bus.registry, bus.bootstrap, lambda d: d.id == ack_id, 1
    )
    env = ack.envelope
    assert (env.subject, env.causationid, env.correlationid) == (
        clue.envelope.subject,
        sent.event_id,
        clue.envelope.correlationid or sent.event_id,
    )


async def test_publish_many_waits_for_the_routers_decisions(bus: Bus, tmp_path: Path) -> None:
    """`publish --file … --wait routed`: every event is published and decided; the one the
    router rejects (nothing to verify on that subject) is listed by line number and reason."""
    lines = [
        json.dumps(
            {"type": "rectification.issued", "to": ["cq-jiangjin"], "data": SAMPLES["rectification.issued"]}
        )
        for _ in range(20)
    ]
    lines[6] = json.dumps(
        {"type": "rectification.verified", "to": ["cq-jiangjin"], "data": SAMPLES["rectification.verified"]}
    )
    events = tmp_path / "routed.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["publish", "--as", "sc-yibin", "--file", str(events), "--wait", "routed"]
    done = await jointbus_cli(bus.home, bus.bootstrap, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "20 events published" in done.stdout
    assert "the router accepted 19 and rejected 1 of them" in done.stdout
    rejected = [line for line in done.stdout.splitlines() if "bad_transition" in line]
    assert len(rejected) == 1
    assert rejected[0].split("│")[1].strip() == "7"


async def test_publish_reply_to_continues_what_the_inbox_holds(bus: Bus) -> None:
    """`publish --reply-to ID`: the operator names the event it answers; subject, cause,
    conversation and recipient come from it."""
    async with Publisher("sc-neijiang", bus.rings["sc-neijiang"], bus.registry, bus.bootstrap) as pub:
        sent = await pub.publish_routed(
            "clue.transferred", f"clue/{uuid.uuid4()}", ["cq-dazu"], SAMPLES["clue.transferred"]
        )
    assert sent.accepted
    data = json.dumps(SAMPLES["clue.acknowledged"], ensure_ascii=False)
    args = [
        "publish",
        "--as",
        "cq-dazu",
        "--type",
        "clue.acknowledged",
        "--reply-to",
        sent.event_id,
        "--data",
        data,
    ]
    done = await jointbus_cli(bus.home, bus.bootstrap, *args, "--wait", "routed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted by the router, delivered to sc-neijiang" in done.stdout
