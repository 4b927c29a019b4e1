"""Following the registry as governance changes it: an agency's Publisher and Subscriber
read ``jointbus.registry`` and accept each new version only when its evidence, replayed
under the version before, brings exactly it into force (``schemas.registry_chain``)."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError

from jointbus.schemas.errors import ContractError
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
    return chain[-1] if chain else current


async def follow_chain(current: Registry, bootstrap: str, **kafka: Any) -> list[Registry]:
    """Every registry version after ``current`` that the feed proves, in order. A version
    that does not prove out is logged and stops the walk there: nothing after a forged or
    forked version is believed."""
    versions: dict[int, RegistryVersion] = {}
    try:
        async for _, _, value in read_topic(bootstrap, REGISTRY_TOPIC, **kafka):
            try:
                found = RegistryVersion.model_validate_json(value)
            except ValidationError:
                log.warning("not a registry version on the registry topic")
                continue
            versions.setdefault(found.registry.version, found)
    except StreamsError as exc:  # no registry topic yet (a cluster not provisioned): no change
        if exc.reason != "unknown_topic":
            raise
        return []
    chain: list[Registry] = []
    registry = current
    while registry.version + 1 in versions:
        try:
            registry = next_from_evidence(registry, versions[registry.version + 1])
        except ContractError as exc:
            log.error("registry version refused", version=registry.version + 1, detail=exc.message)
            break
        chain.append(registry)
    if chain:
        log.info("registry followed", version=registry.version, previous=current.version)
    return chain
