"""Webhooks: each delivery POSTed to the internal system's URL, in inbox order, signed with an
HMAC, retried with back-off until the receiver answers 2xx.

Delivery is at least once: the position is saved after a 2xx, so a gateway stopped between
the receiver's answer and the save delivers that event again. The receiver deduplicates by
``X-Jointbus-Event-Id``. A receiver checks the signature with ``check_signature``: an HMAC
SHA-256 over ``<timestamp>.<body>`` with the shared secret (as Stripe and GitHub do).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time

import httpx
import structlog

from jointbus.gateway.service import Gateway, inbox_item

log = structlog.get_logger("jointbus.gateway.webhook")
SIGNATURE_HEADER = "X-Jointbus-Signature"
TIMESTAMP_HEADER = "X-Jointbus-Timestamp"
EVENT_ID_HEADER = "X-Jointbus-Event-Id"
ATTEMPT_HEADER = "X-Jointbus-Attempt"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Jointbus-Signature`` value of ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check_signature(
    secret: bytes, timestamp: str, body: bytes, header: str, *, tolerance: float = 300
) -> bool:
    """True when ``header`` signs ``body`` at ``timestamp`` and the timestamp is recent (a
    captured delivery replayed later fails)."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature(secret, timestamp, body), header)


class Webhook:
    """Pushes ``gateway``'s deliveries to ``url``; its position is kept in the store."""

    def __init__(
        self, gateway: Gateway, url: str, secret: bytes, *, first_pause: float = 0.5, max_pause: float = 60.0
    ) -> None:
        self.gateway, self.url, self.secret = gateway, url, secret
        self.first_pause, self.max_pause = first_pause, max_pause
        self._key = f"webhook:{url}"

    @property
    def position(self) -> int:
        return int(self.gateway.store.setting(self._key) or 0)

    async def run(self) -> None:
        """Deliver forever: everything after the saved position, then each new delivery."""
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                rows = self.gateway.store.inbox_after(self.position, 50)
                for row in rows:
                    await self._deliver(client, row.event_id, inbox_item(row).model_dump_json().encode())
                    await self.gateway.store.set_setting(self._key, str(row.cursor))
                if not rows:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5.0), self.gateway.arrived:
                            await self.gateway.arrived.wait()

    async def _deliver(self, client: httpx.AsyncClient, event_id: str, body: bytes) -> None:
        """POST until a 2xx answer, pausing twice as long after each failure (capped)."""
        pause, attempt = self.first_pause, 0
        while True:
            attempt += 1
            stamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                EVENT_ID_HEADER: event_id,
                ATTEMPT_HEADER: str(attempt),
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: signature(self.secret, stamp, body),
            }
            try:
                answer = await client.post(self.url, content=body, headers=headers)
                if 200 <= answer.status_code < 300:
                    log.info("webhook delivered", event_id=event_id, attempt=attempt, url=self.url)
                    return
                problem = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.warning(
                "webhook delivery failed; retrying",
                event_id=event_id,
                attempt=attempt,
                problem=problem,
                retry_in=pause,
                url=self.url,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.max_pause)
