"""Provisioning in one place: what the registry's membership needs on the cluster.

Membership comes from the registry, never from a constant. For every member agency of the
registry :func:`provision` creates its outbox and inbox (and the shared topics); on a
secured cluster also a SCRAM-SHA-512 user for every principal the registry implies (its
password in a 0600 file of the credentials folder, made if missing), the ACL plan and every
agency user's Kafka quotas, from the policy of the registry version in force (the newest
``jointbus.registry`` proves; ``streams.quotas``: set every run, so a policy change takes
effect at the next run, e.g. ``jointbus quotas apply``). It
only adds what is missing: run again after the registry gained a member, it gives that
member its topics, Kafka user and rules and leaves everything else as it was. ``jointbus
broker start``, ``jointbus topics create``, the demo and the tests' brokers all call it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from aiokafka.admin import AIOKafkaAdminClient

from jointbus.schemas.registry import Registry
from jointbus.streams.admin import admin_client
from jointbus.streams.errors import StreamsError
from jointbus.streams.quotas import apply_quotas
from jointbus.streams.registry_feed import follow
from jointbus.streams.scram import add_scram_users, scram_users
from jointbus.streams.security import (
    ADMIN,
    Credentials,
    acl_plan,
    create_acls,
    ensure_credentials,
    load_credentials,
    principals,
)
from jointbus.streams.settings import Settings
from jointbus.streams.topics import TopicSpec, ensure_topics, layout

#: how long new SCRAM users may take to show on the cluster (its metadata) before we give up
USERS_VISIBLE_WITHIN = 15.0
log = structlog.get_logger("jointbus.provision")


@dataclass(frozen=True)
class Provisioned:
    """What one run did."""

    agencies: tuple[str, ...]  # the member agencies provisioned for, in registry order
    topics: tuple[str, ...]  # topics created
    users: tuple[str, ...] = ()  # SCRAM users created on the cluster
    acls: int = 0  # ALLOW rules applied (a rule that exists already stays as it is)
    #: the Kafka quotas every agency's user was given (secured clusters), and the registry
    #: version whose policy they come from
    quotas: tuple[tuple[str, float], ...] = ()
    quota_version: int | None = None


def topic_specs(settings: Settings, agencies: Iterable[str]) -> list[TopicSpec]:
    """The topics of docs/architecture.md for these member agencies."""
    return layout(agencies, settings.partitions, min_isr=2 if settings.replication >= 3 else 1)


async def provision(settings: Settings, registry: Registry | None) -> Provisioned:
    """Create on the settings' cluster what ``registry``'s membership needs and is missing.

    Without a registry (a broker started before ``jointbus keys init``) only the shared
    topics and, secured, the service principals and their rules are provisioned. Secured,
    it acts as ``admin``, whose credentials must exist in the credentials folder.
    """
    agencies = registry.agencies if registry is not None else ()
    specs = topic_specs(settings, agencies)
    if not settings.secure:
        async with admin_client(settings.bootstrap_servers) as admin:
            topics = await ensure_topics(admin, specs, settings.replication)
        return Provisioned(agencies, tuple(topics))
    folder = settings.credentials_dir
    root = load_credentials(folder, ADMIN)
    names = principals(agencies)
    fresh = {n for n in names if not (folder / f"{n}.json").exists()}
    creds = ensure_credentials(folder, names)
    async with admin_client(settings.bootstrap_servers, **root.client_kwargs()) as admin:
        topics = await ensure_topics(admin, specs, settings.replication)
        users = await _ensure_users(admin, creds.values(), fresh)
        acls = await create_acls(admin, acl_plan(agencies))
        in_force = await _in_force(registry, settings, root)
        quotas = await apply_quotas(admin, in_force, agencies) if in_force is not None else {}
    version = in_force.version if in_force is not None else None
    return Provisioned(agencies, tuple(topics), tuple(users), acls, tuple(quotas.items()), version)


async def _in_force(registry: Registry | None, settings: Settings, root: Credentials) -> Registry | None:
    """The registry version in force on the bus: the newest that ``jointbus.registry``
    proves from ``registry`` (a governance change may have moved past the local copy)."""
    if registry is None:
        return None
    return await follow(registry, settings.bootstrap_servers, **root.client_kwargs())


async def _ensure_users(
    admin: AIOKafkaAdminClient, creds: Iterable[Credentials], fresh: set[str]
) -> list[str]:
    """Create the SCRAM users the cluster lacks, with the passwords of their files, and wait
    (bounded) until it lists them; a user it has already is left alone."""
    known = await scram_users(admin)
    stale = sorted(fresh & known)
    if stale:  # a file made just now cannot hold the password the cluster already has
        log.warning("credentials created for users the cluster already has", users=stale)
    created = await add_scram_users(admin, [c for c in creds if c.username not in known])
    deadline = time.monotonic() + USERS_VISIBLE_WITHIN
    while missing := set(created) - await scram_users(admin):
        if time.monotonic() > deadline:
            raise StreamsError(
                f"the cluster does not list the new SCRAM users {sorted(missing)} after "
                f"{USERS_VISIBLE_WITHIN:.0f} s",
                reason="scram_failed",
            )
        await asyncio.sleep(0.2)
    return created
