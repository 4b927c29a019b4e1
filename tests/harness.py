"""Helpers for integration tests: a federation on disk, a real worker process, inbox reads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from schemas.ids import utcnow
from schemas.keys import Keyring, new_federation, revoke, rotate
from schemas.registry import Registry
from streams import keystore
from streams.sdk import Delivery, Subscriber

REVOKED = "cq-dazu#sig-1"


def make_federation(home: Path) -> tuple[Registry, dict[str, Keyring]]:
    """A federation in ``home/keys`` where cq-dazu's first signing key is revoked."""
    start = utcnow() - timedelta(days=10)
    registry, rings = new_federation(start)
    stolen = rings["cq-dazu"]
    registry, rings["cq-dazu"] = rotate(
        registry, stolen, "sign", start + timedelta(days=1), overlap=timedelta(days=30)
    )
    registry = revoke(registry, REVOKED, start + timedelta(days=2), "signing laptop stolen")
    rings["cq-dazu-stolen"] = stolen
    directory = home / "keys"
    for owner, ring in rings.items():
        if owner != "cq-dazu-stolen":
            keystore.save_keyring(directory, ring)
    keystore.save_registry(directory, registry)
    return registry, rings


class WorkerProcess:
    """`jointbus worker` as a real child process."""

    def __init__(self, home: Path, bootstrap: str, **env: str) -> None:
        self.home = home
        self.bootstrap = bootstrap
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        env = {
            **os.environ,
            "JOINTBUS_HOME": str(self.home),
            "JOINTBUS_BOOTSTRAP": self.bootstrap,
            **self.env,
        }
        self.log = self.home / f"worker-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jointbus", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if "Worker]: Ready" in text:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {text[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready: {self.log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def collect(
    agency: str,
    ring: Keyring,
    registry: Registry,
    bootstrap: str,
    want: Callable[[Delivery], bool],
    count: int,
    within: float = 60.0,
    *,
    receipts: bool = False,
) -> list[Delivery]:
    """Read ``agency``'s inbox with a fresh group until ``count`` wanted deliveries arrived."""
    found: list[Delivery] = []

    async def handle(delivery: Delivery) -> bool:
        if want(delivery):
            found.append(delivery)
        return len(found) >= count

    sub = Subscriber(agency, ring, registry, bootstrap, group_id=False, receipts=receipts)
    await sub.start()
    try:
        async with asyncio.timeout(within):
            await sub.run(handle)
    except TimeoutError:
        pass
    finally:
        await sub.stop()
    return found


async def nothing_more(
    agency: str,
    ring: Keyring,
    registry: Registry,
    bootstrap: str,
    want: Callable[[Delivery], bool],
    settle: float = 1.5,
) -> list[Delivery]:
    """Everything wanted in the inbox now (reads to the end after a settling pause)."""
    await asyncio.sleep(settle)
    found: list[Delivery] = []
    async with Subscriber(
        agency, ring, registry, bootstrap, group_id=False, receipts=False, until_end=True
    ) as sub:
        async for delivery in sub:
            if want(delivery):
                found.append(delivery)
    return found
