"""The command line as a user meets it: `jointbus publish --file` throughput beside the SDK's
`Publisher.submit` in the same run, and the start-up time of `jointbus --help` and of one
`jointbus publish` (medians of 10)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.common import bench_bus
from bench.e2e import PAYLOAD
from jointbus.streams.sdk import Publisher


async def sdk_rate(bootstrap: str, registry: Any, rings: Any, n: int) -> float:
    """Events/s when one Publisher submits ``n`` events and waits for every acknowledgement."""
    async with Publisher("sc-zigong", rings["sc-zigong"], registry, bootstrap) as pub:
        began = time.perf_counter()
        futures = []
        for _ in range(n):
            _, future = await pub.submit(
                "rectification.issued", f"rectification/{uuid.uuid4()}", ["cq-dazu"], PAYLOAD
            )
            futures.append(future)
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - began)


def jointbus(env: dict[str, str], *args: str) -> float:
    """Seconds one ``jointbus`` command takes, start-up included."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jointbus", *args], env=env, check=True, capture_output=True, timeout=600
    )
    return time.perf_counter() - began


def run(n: int = 2000) -> dict[str, Any]:
    with bench_bus("jointbus-bench-cli-") as bus:
        env = {**os.environ, "JOINTBUS_HOME": str(bus.home), "JOINTBUS_BOOTSTRAP": bus.broker.bootstrap}
        sdk = asyncio.run(sdk_rate(bus.broker.bootstrap, bus.registry, bus.rings, n))
        events = bus.home / "events.jsonl"
        line = {"type": "rectification.issued", "to": ["cq-dazu"], "data": PAYLOAD}
        events.write_text("\n".join(json.dumps(line, ensure_ascii=False) for _ in range(n)) + "\n", "utf-8")
        cli = n / jointbus(env, "publish", "--as", "sc-zigong", "--file", str(events))
        data = json.dumps(PAYLOAD, ensure_ascii=False)
        one = [
            "publish",
            "--as",
            "sc-zigong",
            "--type",
            "rectification.issued",
            "--to",
            "cq-dazu",
            "--data",
            data,
        ]
        help_s = statistics.median(jointbus(env, "--help") for _ in range(10))
        publish_s = statistics.median(jointbus(env, *one) for _ in range(10))
    return {
        "events": n,
        "sdk_submit_per_s": round(sdk),
        "cli_file_per_s": round(cli),
        "cli_file_ratio": round(cli / sdk, 3),
        "help_median_s": round(help_s, 3),
        "publish_one_median_s": round(publish_s, 3),
    }
