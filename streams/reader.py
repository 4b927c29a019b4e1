"""Reading a single-partition log topic (audit, checkpoints) from an offset to its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topic(
    bootstrap: str, topic: str, start: int = 0, *, follow: bool = False, **kafka: Any
) -> AsyncIterator[tuple[int, bytes | None, bytes]]:
    """(offset, key, value) of partition 0 of ``topic`` from ``start`` to the end as it was
    when reading began (or forever, with ``follow``). No consumer group: nothing is committed.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **kafka,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        position = start
        while follow or position < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=2000)
            for record in batch.get(tp, []):
                position = record.offset + 1
                yield record.offset, record.key, record.value
                if not follow and position >= end:
                    return
    finally:
        await consumer.stop()


async def end_offset(bootstrap: str, topic: str, **kafka: Any) -> int:
    """The next offset of partition 0 of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **kafka)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()
