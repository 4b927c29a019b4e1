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

from jointbus.streams.sdk import Publisher
from tests.conftest import Bus
from tests.harness import collect
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
