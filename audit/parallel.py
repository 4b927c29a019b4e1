"""``audit verify --jobs N``: the signatures checked in N processes, everything else in order.

Re-deriving a decision needs the history before it (the ledger, the registry chain, the
tree), so it stays in one process, in log order. What does not need history — whether each
logged event's and notice's Ed25519 signature verifies over its RFC 8785 bytes, the bulk of
the work — is done ahead, in a pool of processes, chunk by chunk. The verifier then takes
each record with the answers for its own signatures (``schemas.signing.prechecked``), and
checks itself any signature the pool could not (a key added later by governance, a record
it could not read). At most a few chunks are in flight, so memory stays flat.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jointbus.audit.verifier import Verifier
from jointbus.schemas.envelope import loads_with_flag
from jointbus.schemas.records import record_of
from jointbus.schemas.registry import Registry
from jointbus.schemas.signing import signature_valid

CHUNK = 2000
IN_FLIGHT = 3

Record = tuple[int, bytes | None, bytes]


def signing_keys(registry: Registry) -> dict[str, bytes]:
    """Every signing key of the registry, raw, by kid (a kid's key never changes)."""
    return {k.kid: k.raw() for k in registry.keys if k.purpose == "sign"}


def precheck(values: list[bytes], keys: dict[str, bytes]) -> list[dict[str, bool]]:
    """For each audit record: signature text → whether it verifies, for the logged event and
    the router's notice (the envelopes exactly as the record holds them)."""
    publics = {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in keys.items()}
    answers: list[dict[str, bool]] = []
    for value in values:
        found: dict[str, bool] = {}
        try:
            record = record_of(value)
            wire = record.wire() if record.event is None else None
            event = record.event if wire is None else loads_with_flag(wire)[0]
            for env in (event, record.notice):
                if not isinstance(env, dict):
                    continue
                signature, kid = env.get("signature"), env.get("sigkeyid")
                if isinstance(signature, str) and isinstance(kid, str) and kid in publics:
                    found[f"{kid} {signature}"] = signature_valid(env, publics[kid])
        except Exception:  # the verifier will say what is wrong with it, in order
            found = {}
        answers.append(found)
    return answers


async def feed_parallel(
    verifier: Verifier,
    records: AsyncIterator[Record] | Iterable[Record],
    jobs: int,
    step: Callable[[int], None],
) -> None:
    """Feed every record to ``verifier`` in order, its signatures checked by ``jobs``
    processes ahead of it."""
    keys = signing_keys(verifier.registry)
    pending: deque[tuple[list[Record], Future[list[dict[str, bool]]]]] = deque()

    async def drain(until: int) -> None:
        while len(pending) > until:
            chunk, answers = pending.popleft()
            checked: list[dict[str, bool]] = await asyncio.wrap_future(answers)
            for (offset, key, value), known in zip(chunk, checked, strict=True):
                verifier.feed(offset, key, value, known=known)
                step(offset + 1)

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        chunk: list[Record] = []

        async def take(record: Record) -> None:
            nonlocal chunk
            chunk.append(record)
            if len(chunk) >= CHUNK:
                pending.append((chunk, pool.submit(precheck, [v for _, _, v in chunk], keys)))
                chunk = []
                await drain(IN_FLIGHT)

        if isinstance(records, AsyncIterator):
            async for record in records:
                await take(record)
        else:
            for record in records:
                await take(record)
        if chunk:
            pending.append((chunk, pool.submit(precheck, [v for _, _, v in chunk], keys)))
        await drain(0)
