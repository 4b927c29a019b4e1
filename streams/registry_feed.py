"""Following the registry as governance changes it: an agency's Publisher and Subscriber
read ``jointbus.registry`` and accept each new version only when its evidence, replayed
under the version before, brings exactly it into force (``schemas.registry_chain``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from jointbus.schemas.registry import Registry
from jointbus.schemas.registry_chain import RegistryVersion, next_from_evidence
from jointbus.streams.errors import StreamsError
from jointbus.streams.reader import read_topic
from jointbus.streams.topics import REGISTRY_TOPIC

log = structlog.get_logger("jointbus.registry")


async def follow(current: Registry, bootstrap: str, **kafka: Any) -> Registry:
    """The newest registry version the feed proves, starting from ``current`` (itself when
    the feed has nothing newer)."""
    chain = await follow_chain(current, bootstrap, **kafka)
    return chain[-1][0] if chain else current


async def follow_chain(current: Registry, bootstrap: str, **kafka: Any) -> list[tuple[Registry, datetime]]:
    """Every registry version after ``current`` that the feed proves, in order, each with
    the moment it came into force. Every record offered for a version is tried: one that
    does not prove out is logged and skipped; two that prove different registries for the
    same version are a fork, and the walk stops there (nothing after it is believed)."""
    offered: dict[int, list[RegistryVersion]] = {}
    try:
        async for _, _, value in read_topic(bootstrap, REGISTRY_TOPIC, **kafka):
            try:
                found = RegistryVersion.model_validate_json(value)
            except ValidationError:
                log.warning("not a registry version on the registry topic")
                continue
            offered.setdefault(found.registry.version, []).append(found)
    except StreamsError as exc:  # no registry topic yet (a cluster not provisioned): no change
        if exc.reason != "unknown_topic":
            raise
        return []
    chain: list[tuple[Registry, datetime]] = []
    registry = current
    while registry.version + 1 in offered:
        proven: dict[str, tuple[Registry, datetime]] = {}
        for candidate in offered[registry.version + 1]:
            try:
                proven.setdefault(
                    next_from_evidence(registry, candidate).digest,
                    (candidate.registry, candidate.in_force_from),
                )
            except Exception as exc:  # a bad record (forged, unreadable) must not stop a reader
                log.error("registry version refused", version=registry.version + 1, detail=str(exc)[:300])
        if len(proven) != 1:
            if len(proven) > 1:
                log.error(
                    "registry fork: two versions prove out; following neither", version=registry.version + 1
                )
            break
        ((registry, since),) = proven.values()
        chain.append((registry, since))
    if chain:
        log.debug("registry followed", version=registry.version, previous=current.version)
    return chain
