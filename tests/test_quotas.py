"""No member can flood another through Kafka itself (issue 25, item 5): provisioning gives
every agency's SCRAM user the quotas of the registry's policy, the cluster reads them back,
a flooding agency's produce rate is held near its quota by the broker, and another agency's
records still go through while the flood is throttled. One secured broker of its own: the
quotas here are low on purpose and must not slow other modules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from jointbus.schemas.governance import PolicyChanged, next_version
from jointbus.schemas.ids import utcnow
from jointbus.schemas.registry import Registry
from jointbus.streams.admin import admin_client
from jointbus.streams.broker import LocalBroker
from jointbus.streams.quotas import PRODUCE, apply_quotas, describe_quotas, quotas_of
from jointbus.streams.reader import end_offset
from jointbus.streams.security import ADMIN, Credentials
from jointbus.streams.topics import outbox
from tests.conftest import development_registry, secured_broker
from tests.harness import eventually
from tests.stats import STATS

pytestmark = pytest.mark.broker

#: the policy's produce quota here: 4 KiB/s per agency
QUOTA = 4096
RECORD = 1024
#: what the flooder writes: 25 s of its quota; Kafka lets about 10 s of quota through at
#: once (its rate is measured over at least 10 one-second windows), so ~15 s throttled
FLOOD = 100
HONEST = 8


def _policy(registry: Registry, **changes: int) -> Registry:
    return next_version(registry, [PolicyChanged.model_validate(changes)], utcnow())


@pytest.fixture(scope="module")
def throttled(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalBroker, dict[str, Credentials], Registry]]:
    """A secured broker provisioned for a registry whose policy gives each agency 4 KiB/s."""
    registry = _policy(development_registry(), produce_bytes_per_second=QUOTA)
    home: Path = tmp_path_factory.mktemp("quotas")
    broker, creds = secured_broker(home, registry)
    yield broker, creds, registry
    broker.stop()


async def _produce(broker: LocalBroker, cred: Credentials, n: int) -> float:
    """Seconds ``cred``'s agency takes to have ``n`` records of 1 KiB acknowledged in its outbox."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        max_batch_size=4 * RECORD,
        linger_ms=0,
        request_timeout_ms=60_000,
        **cred.client_kwargs(),
    )
    await producer.start()
    try:
        started = time.monotonic()
        sends = [await producer.send(outbox(cred.username), b"x" * RECORD, partition=0) for _ in range(n)]
        await asyncio.wait_for(asyncio.gather(*sends), timeout=120)
        return time.monotonic() - started
    finally:
        await producer.stop()


async def test_provisioning_sets_each_agencys_quotas_from_the_registry_policy(
    throttled: tuple[LocalBroker, dict[str, Credentials], Registry],
) -> None:
    """DescribeClientQuotas reads back, for every agency's user, what the policy asks; the
    services are not throttled; a policy change applied again is read back too."""
    broker, creds, registry = throttled
    wanted = quotas_of(registry.policy)
    assert wanted[PRODUCE] == QUOTA
    async with admin_client(broker.bootstrap, **creds[ADMIN].client_kwargs()) as admin:

        async def read_back(user: str, expect: dict[str, float]) -> dict[str, float]:
            """What the cluster reports for ``user`` once it reports ``expect``: a broker
            answers from its metadata, which follows the controller a moment later."""

            async def probe() -> dict[str, float] | None:
                found = await describe_quotas(admin, user)
                return found if found == expect else None

            return await eventually(probe, within=30, what=f"the quotas of {user} read back as {expect}")

        for agency in registry.agencies:
            assert await read_back(agency, wanted) == wanted
        assert await describe_quotas(admin, "svc-router") == {}
        changed = _policy(registry, request_percentage=40)
        await apply_quotas(admin, changed, ["sc-zigong"])
        assert (await read_back("sc-zigong", quotas_of(changed.policy)))["request_percentage"] == 40
        await apply_quotas(admin, registry)  # as the fixture's policy says, for the next test
        assert await read_back("sc-zigong", wanted) == wanted


async def test_quota_throttles_a_flooding_member_but_not_the_others(
    throttled: tuple[LocalBroker, dict[str, Credentials], Registry],
) -> None:
    """sc-zigong writes 100 KiB as fast as it can under a 4 KiB/s quota: the broker holds it
    to about its quota (at least half the time the quota implies once Kafka's 10-second
    burst allowance is spent); sc-luzhou's records, sent meanwhile, are all written before
    the flood is through."""
    broker, creds, _ = throttled
    flood = asyncio.create_task(_produce(broker, creds["sc-zigong"], FLOOD))
    await asyncio.sleep(1.0)
    honest = await _produce(broker, creds["sc-luzhou"], HONEST)
    assert not flood.done(), "the flood was through before the honest agency's records"
    flooded = await flood
    rate = FLOOD * RECORD / flooded
    floor = 0.5 * (FLOOD * RECORD / QUOTA - 11)  # 11 one-second windows: the burst allowance
    STATS["quota: flooder's rate under a 4 KiB/s quota, B/s"] = round(rate)
    STATS["quota: 100 KiB flood took, s / honest 8 KiB meanwhile, s"] = f"{flooded:.1f} / {honest:.1f}"
    assert flooded >= floor, f"100 KiB went through in {flooded:.1f} s: not throttled to {QUOTA} B/s"
    assert rate <= 3 * QUOTA
    kafka = creds[ADMIN].client_kwargs()
    assert await end_offset(broker.bootstrap, outbox("sc-luzhou"), **kafka) >= HONEST
