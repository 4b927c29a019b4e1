"""The README's gateway sequence, run as written: tokens made with the CLI, two gateways,
then the curl block (only the ports changed to free ones) against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from jointbus.gateway.client import GatewayClient
from jointbus.processes import GatewayProcess
from jointbus.streams.broker import free_port
from tests.conftest import Bus
from tests.harness import eventually, run_jointbus

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[1]


def readme_block() -> str:
    """The shell block between the README's gateway-curl markers."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- gateway-curl:begin -->\n```sh\n(.*?)```\n<!-- gateway-curl:end -->", text, re.S)
    assert found, "the README lost its gateway-curl block"
    return found.group(1)


async def test_readme_curl_sequence_publishes_reads_and_acknowledges(bus: Bus, tmp_path: Path) -> None:
    """Luzhou's system publishes a clue with curl, Rongchang's reads it opened and
    acknowledges it, and Luzhou then sees Rongchang's signed receipt."""
    env = {**os.environ, "JOINTBUS_HOME": str(bus.home), "JOINTBUS_BOOTSTRAP": bus.bootstrap}
    for agency, file in (("sc-luzhou", "luzhou.token"), ("cq-rongchang", "rongchang.token")):
        made = run_jointbus("gateway", "token", "add", "case-system", "--as", agency, env=env)
        assert made.returncode == 0, made.stderr
        (tmp_path / file).write_text(made.stdout)
    ports = {"8443": free_port(), "8444": free_port()}
    luzhou = GatewayProcess(bus.home, bus.bootstrap, "sc-luzhou", ports["8443"]).start()
    rongchang = GatewayProcess(bus.home, bus.bootstrap, "cq-rongchang", ports["8444"]).start()
    try:
        script = readme_block()
        for written, port in ports.items():
            script = script.replace(f"127.0.0.1:{written}", f"127.0.0.1:{port}")
        ran = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        lines = ran.stdout.splitlines()
        assert lines[0] == "accepted ['cq-rongchang']"
        assert any(line.endswith(" clue.transferred sc-luzhou 荣昌某项目围标串标") for line in lines[1:]), (
            lines
        )
        token = (tmp_path / "luzhou.token").read_text().strip()
        async with GatewayClient(luzhou.url, token) as client:
            event_id = json.loads((tmp_path / "sent.json").read_text())["id"]

            async def receipted() -> list[dict[str, str]] | None:
                receipts: list[dict[str, str]] = (await client.event(event_id))["receipts"]
                return receipts or None

            receipts = await eventually(receipted, within=30, what="Rongchang's receipt at Luzhou's gateway")
        assert [(r["recipient"], r["status"]) for r in receipts] == [("cq-rongchang", "opened")]
    finally:
        luzhou.stop()
        rongchang.stop()
